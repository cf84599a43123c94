import ArgumentParser
import Engine
import Foundation
import Journal
import JournalPostgres
import Projections
import Crypto

extension JournalCommand {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a portable, verifiable copy of the journal (SPEC.md §4.6): records byte for byte, with a checksum.",
            discussion: """
                Copies every event up to the last position at the start, with the stream names and zstd \
                dictionaries they need, and ends with a SHA-256 of the file. psm journal import turns it \
                back into a store with the same positions, chain heads and projection state hash. The \
                store stays usable meanwhile. The file is written to FILE.partial and renamed at the end.

                Example:
                  psm journal export --store ./psm-store --out psm.journal
                """)
        @OptionGroup var store: StoreOptions
        @Option(help: ArgumentHelp("Output file.", valueName: "FILE")) var out: String
        @Flag(help: "Print JSON.") var json = false

        struct Output: Encodable { var file: String; var records: UInt64; var last_position: UInt64; var streams, dictionaries: Int; var bytes: UInt64; var sha256: String }

        func run() throws {
            try guarded {
                let journal = try store.openJournal()
                defer { journal.close() }
                let partial = out + ".partial"
                guard FileManager.default.createFile(atPath: partial, contents: nil), let handle = FileHandle(forWritingAtPath: partial) else {
                    throw CLIError.io("cannot create \(partial)")
                }
                let bar = Progress(label: "export", total: try journal.stats().lastPosition, enabled: !json)
                var buffer: [UInt8] = []
                let summary: PortableJournal.Summary
                do {
                    summary = try PortableJournal.export(journal, progress: { done, _ in bar.update(done) }) { bytes in
                        buffer += bytes
                        if buffer.count >= 1 << 20 {
                            try handle.write(contentsOf: buffer)
                            buffer.removeAll(keepingCapacity: true)
                        }
                    }
                    try handle.write(contentsOf: buffer)
                    try handle.synchronize()
                    try handle.close()
                } catch {
                    try? handle.close()
                    try? FileManager.default.removeItem(atPath: partial)
                    throw error
                }
                bar.finish()
                guard rename(partial, out) == 0 else { throw CLIError.io("cannot rename \(partial) to \(out): \(String(cString: strerror(errno)))") }
                let o = Output(
                    file: out, records: summary.records, last_position: summary.lastPosition, streams: summary.streams, dictionaries: summary.dictionaries,
                    bytes: summary.bytes, sha256: hexBytes(summary.sha256))
                if json { try printJSON(o) } else { print("exported \(o.records) events (\(o.streams) streams, \(o.dictionaries) dictionaries) to \(out): \(o.bytes) bytes, sha256 \(o.sha256)") }
            }
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a store from a portable journal file, check it, rebuild its projections and print the state hash.",
            discussion: """
                The whole file is checked first (every frame, record CRC and the final SHA-256); then the \
                records are appended byte for byte into a new store built in STORE.importing, verified \
                (psm verify), folded into projections, and renamed into place. The target must not exist, \
                so nothing is ever half-imported into a live store.

                Example:
                  psm journal import psm.journal --store ./restored --json
                """)
        @OptionGroup var store: StoreOptions
        @Argument(help: "A file written by psm journal export.") var file: String
        @Flag(help: "Print JSON.") var json = false

        struct Output: Encodable { var store: String; var records: UInt64; var last_position: UInt64; var streams: Int; var state_hash: String; var verified: Bool }

        func run() throws {
            try guarded {
                let target = store.storePath
                guard !FileManager.default.fileExists(atPath: target) else { throw CLIError.usage("\(target) exists; import creates a new store (choose another --store)") }
                let checked: PortableJournal.Summary
                do { checked = try PortableJournal.check(path: file) } catch { throw CLIError.data("\(file): \(error)") }
                let work = target + ".importing"
                try? FileManager.default.removeItem(atPath: work)
                do {
                    let journal = try Journal(directory: work + "/journal")
                    let bar = Progress(label: "import", total: checked.records, enabled: !json)
                    do {
                        _ = try PortableJournal.importFile(path: file, into: journal) { bar.update($0) }
                        bar.finish()
                        let report = try journal.verify()
                        if let p = report.problem { throw CLIError.data("the imported journal does not verify: \(p)") }
                    } catch {
                        journal.close()
                        throw error
                    }
                    journal.close()
                    let engine = try Engine(directory: work)
                    let hash = try engine.stateHash()
                    engine.close()
                    guard rename(work, target) == 0 else { throw CLIError.io("cannot rename \(work) to \(target): \(String(cString: strerror(errno)))") }
                    let o = Output(store: target, records: checked.records, last_position: checked.lastPosition, streams: checked.streams, state_hash: hexBytes(hash), verified: true)
                    if json { try printJSON(o) } else { print("imported \(o.records) events (\(o.streams) streams) into \(target); verified; state hash \(o.state_hash)") }
                } catch {
                    try? FileManager.default.removeItem(atPath: work)
                    throw error
                }
            }
        }
    }
}

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "A consistent copy of a live store: journal, projections, API keys and imported models.",
        discussion: """
            Copies the projections, then the journal, each with one LMDB read transaction (mdb_env_copy2, \
            compacted), so writers go on meanwhile and the copy's projections are never ahead of its \
            journal. The copy is written to DIR.partial, its journal verified, and renamed to DIR. \
            Open the copy like any store (psm … --store DIR).

            Example:
              psm backup /backups/psm-2026-11-25 --store ./psm-store --json
            """)
    @OptionGroup var store: StoreOptions
    @Argument(help: "The backup directory (must not exist).") var directory: String
    @Flag(help: "Print JSON.") var json = false

    struct Output: Encodable { var directory: String; var events: Int; var last_position: UInt64; var streams: Int; var journal_bytes: Int; var verified: Bool }

    func run() throws {
        try guarded {
            guard !FileManager.default.fileExists(atPath: directory) else { throw CLIError.usage("\(directory) exists; a backup goes into a new directory") }
            let engine = try store.openEngine()
            defer { engine.close() }
            let work = directory + ".partial"
            try? FileManager.default.removeItem(atPath: work)
            do {
                try engine.projections.backup(to: work + "/projections")
                try engine.journal.backup(to: work + "/journal")
                let fm = FileManager.default
                for extra in ["keys.json", "models", "datakeys"] where fm.fileExists(atPath: store.storePath + "/" + extra) {
                    try fm.copyItem(atPath: store.storePath + "/" + extra, toPath: work + "/" + extra)
                }
                let copy = try Journal(directory: work + "/journal")
                let report = try copy.verify()
                copy.close()
                if let p = report.problem { throw CLIError.data("the backup's journal does not verify: \(p)") }
                guard rename(work, directory) == 0 else { throw CLIError.io("cannot rename \(work) to \(directory): \(String(cString: strerror(errno)))") }
                let size = (try? fm.attributesOfItem(atPath: directory + "/journal/data.mdb")[.size] as? Int) ?? 0
                let o = Output(directory: directory, events: report.events, last_position: report.lastPosition, streams: report.streams, journal_bytes: size, verified: true)
                if json { try printJSON(o) } else { print("backed up \(o.events) events (\(o.streams) streams, journal \(o.journal_bytes) bytes) to \(directory); journal verified") }
            } catch {
                try? FileManager.default.removeItem(atPath: work)
                throw error
            }
        }
    }
}

struct TreeHeadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tree-head",
        abstract: "Sign the current Merkle tree head of a tenant's records (RFC 6962), for auditors to keep.",
        discussion: """
            The tree's leaves are the tenant's records in position order (SPEC.md §8.1). The head (size, \
            last position, root) is signed with the store's Ed25519 key (STORE/signing/ed25519.key, made on \
            first use; its public key is in the head). Keep heads outside the store; later, \
            psm verify --against HEAD.json --public-key KEY proves the journal still holds every record \
            the head covers, unchanged and in order.

            With --journal postgres://… (or $PSM_JOURNAL) the tree covers the tenant's records in the \
            PostgreSQL journal of record, in feed order (SPEC.md §15.4); the key is still --store's.

            Example:
              psm tree-head --tenant acme --out acme-head.json
              psm verify --against acme-head.json --public-key 3b6a…
              psm tree-head --journal postgres://psm@db1:5432/psm --tenant acme --out acme-head.json
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @Option(help: "The tenant whose records the tree covers.") var tenant: String
    @Option(help: ArgumentHelp("Write the head to FILE (default: standard output).", valueName: "FILE")) var out: String?

    func run() async throws {
        do {
            let key = try SigningKey.load(storePath: store.storePath)
            let head: TreeHead
            if let url = backend.url {
                let journal = try await backend.open(url)
                defer { journal.close() }
                let (leaves, positions) = try await journal.tenantLeaves(tenant)
                head = try TreeHead.sign(tenant: tenant, leaves: leaves, positions: positions, key: key)
            } else {
                let journal = try store.openJournal()
                defer { journal.close() }
                head = try journal.signTreeHead(tenant: tenant, key: key)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
            let data = try encoder.encode(head)
            if let out {
                do { try data.write(to: URL(fileURLWithPath: out), options: .atomic) } catch { throw CLIError.io("cannot write \(out): \(error.localizedDescription)") }
                FileHandle.standardError.write(Data("tree head of \(tenant): \(head.tree_size) records, root \(head.root.prefix(16))…, written to \(out)\n".utf8))
            } else {
                print(String(decoding: data, as: UTF8.self))
            }
        } catch { throw reportedExit(error) }
    }
}

/// The store's Ed25519 signing key for tree heads: 32 raw bytes in STORE/signing/ed25519.key (0600).
enum SigningKey {
    static func load(storePath: String) throws -> Curve25519.Signing.PrivateKey {
        let dir = storePath + "/signing", path = dir + "/ed25519.key"
        if let data = FileManager.default.contents(atPath: path) {
            do { return try Curve25519.Signing.PrivateKey(rawRepresentation: data) } catch { throw CLIError.data("\(path) is not an Ed25519 key (\(data.count) bytes)") }
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let key = Curve25519.Signing.PrivateKey()
        guard FileManager.default.createFile(atPath: path, contents: key.rawRepresentation, attributes: [.posixPermissions: 0o600]) else {
            throw CLIError.io("cannot write \(path)")
        }
        return key
    }
}
