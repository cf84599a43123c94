import ArgumentParser
import Foundation
import Journal
import JournalPostgres
import Projections

struct JournalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "journal",
        abstract: "Inspect the journal: the immutable event log of a store.",
        subcommands: [Stats.self, Dump.self, TrainDictionary.self, Export.self, Import.self]
    )

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Counts and sizes of the journal.",
            discussion: "Example:\n  psm journal stats --store ./psm-store --json")
        @OptionGroup var store: StoreOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try guarded {
                let journal = try store.openJournal()
                defer { journal.close() }
                let s = try journal.stats()
                if json { try printJSON(s); return }
                print("store          \(store.storePath)")
                print("events         \(s.events) (last position \(s.lastPosition))")
                print("streams        \(s.streams)")
                print("dictionaries   \(s.dictionaries) (active: \(s.activeDictionary == 0 ? "none" : String(s.activeDictionary)))")
                print("bytes in use   \(s.usedBytes) (\(s.usedPages) pages of \(s.pageSize)); file \(s.fileBytes); map \(s.mapSize)")
                if s.events > 0 { print("bytes/event    \(s.usedBytes / s.events)") }
                print("readers        \(s.readersInUse) of \(s.maxReaders) slots")
                for (name, pages) in s.databases.sorted(by: { $0.key < $1.key }) {
                    print("  \(name.padding(toLength: 18, withPad: " ", startingAt: 0)) \(pages) pages")
                }
            }
        }
    }

    struct TrainDictionary: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "train-dictionary",
            abstract: "Train a zstd dictionary on the newest payloads; new appends compress with it.",
            discussion: """
                Reads the newest --samples payloads, trains a dictionary of at most --size bytes, stores it in \
                the journal under the next id (dictionaries are never removed: old records keep theirs) and \
                makes it the active one. Small conversational payloads typically shrink by a further \
                quarter to a third with a dictionary (see `psm bench journal`).

                Example:
                  psm journal train-dictionary --samples 5000 --json
                """)
        @OptionGroup var store: StoreOptions
        @Option(help: "Payloads to train on (100...100000).") var samples: Int = 5000
        @Option(help: "Dictionary size in bytes (1024...1048576).") var size: Int = 16 << 10
        @Flag(help: "Print JSON.") var json = false

        func validate() throws {
            guard (100...100_000).contains(samples) else { throw ValidationError("--samples must be 100...100000, got \(samples)") }
            guard (1024...(1 << 20)).contains(size) else { throw ValidationError("--size must be 1024...1048576, got \(size)") }
        }

        struct Output: Encodable { var dictionary_id: UInt32; var samples: Int; var bytes: Int }

        func run() throws {
            try guarded {
                let journal = try store.openJournal()
                defer { journal.close() }
                var payloads: [[UInt8]] = []
                var next = UInt64.max
                while payloads.count < samples {
                    let page = try journal.read(from: next, limit: 4096, direction: .backward)
                    // Never encrypted payloads: a dictionary is immutable and stored in clear, so user
                    // content in it could not be erased (SPEC.md §4.7).
                    for e in page where e.header.keyID == 0 && payloads.count < samples { payloads.append(try journal.payload(of: e)) }
                    guard let last = page.last, last.position > 1, page.count > 0 else { break }
                    next = last.position - 1
                }
                guard payloads.count >= 100 else {
                    throw CLIError.usage("the journal has \(payloads.count) unencrypted events; a dictionary needs at least 100 payloads to train on (encrypted user payloads are never used)")
                }
                let id = try journal.trainDictionary(samples: payloads, capacity: size)
                let bytes = try journal.dictionaryBytes(id).count
                if json { try printJSON(Output(dictionary_id: id, samples: payloads.count, bytes: bytes)); return }
                print("dictionary \(id): \(bytes) bytes trained on \(payloads.count) payloads; new appends compress with it")
            }
        }
    }

    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print events in position order (or newest first), one per line.",
            discussion: """
                Payload contents are not printed unless --payload is given.

                Examples:
                  psm journal dump --from 1 --limit 20
                  psm journal dump --stream acme/user-42 --backward --limit 5 --json
                """)
        @OptionGroup var store: StoreOptions
        @Option(help: "First position (or, with --stream, first revision) to print.") var from: UInt64?
        @Option(help: "Maximum number of events (1...100000).") var limit: Int = 100
        @Option(help: ArgumentHelp("Only this stream, as TENANT/NAME.", valueName: "TENANT/NAME")) var stream: String?
        @Flag(help: "Newest first.") var backward = false
        @Flag(help: "Also print each payload's fields.") var payload = false
        @Flag(help: "Print JSON: {\"events\": [...], \"next\": N}.") var json = false

        func validate() throws {
            guard (1...100_000).contains(limit) else { throw ValidationError("--limit must be 1...100000, got \(limit)") }
            if let stream, !stream.contains("/") { throw ValidationError("--stream must be TENANT/NAME, got '\(stream)'") }
        }

        func run() throws {
            try guarded {
                let journal = try store.openJournal()
                defer { journal.close() }
                let direction: Journal.Direction = backward ? .backward : .forward
                let events: [StoredEvent]
                if let stream {
                    let slash = stream.firstIndex(of: "/")!
                    let name = try StreamName(tenant: String(stream[..<slash]), name: String(stream[stream.index(after: slash)...]))
                    events = try journal.read(stream: name.id, fromRevision: from ?? (backward ? UInt64.max : 0), limit: limit, direction: direction)
                } else {
                    events = try journal.read(from: from ?? (backward ? UInt64.max : 1), limit: limit, direction: direction)
                }
                var rows: [DumpRow] = []
                for e in events {
                    var row = DumpRow(e)
                    if payload { row.payload = try PayloadRendering.fields(try journal.payload(of: e)) }
                    rows.append(row)
                }
                let next: UInt64? = events.count == limit ? events.last.map { stream == nil ? (backward ? $0.position - 1 : $0.position + 1) : (backward ? $0.header.revision &- 1 : $0.header.revision + 1) } : nil
                if json { try printJSON(DumpOutput(events: rows, next: next)); return }
                for r in rows {
                    print("\(r.position)\t\(r.stream_id)@\(r.revision)\ttype \(r.type)\t\(r.event_time)\tid \(r.event_id)\tcause \(r.causation_id ?? "-")\t\(r.stored_bytes)/\(r.payload_bytes) B\(r.compression == "none" ? "" : " " + r.compression)")
                    if let p = r.payload { for f in p { print("\t  \(f.field): \(f.value)") } }
                }
                if let next { FileHandle.standardError.write(Data("(more: continue with --from \(next))\n".utf8)) }
            }
        }
    }
}

struct DumpOutput: Encodable {
    var events: [DumpRow]
    var next: UInt64?
}

struct DumpRow: Encodable {
    var position: UInt64
    var stream_id: String
    var revision: UInt64
    var type: UInt16
    var event_time: String
    var event_time_us: Int64
    var event_id: String
    var causation_id: String?
    var stored_bytes: UInt32
    var payload_bytes: UInt32
    var compression: String
    var record_crc32c: String
    var payload: [PayloadRendering.Field]?

    init(_ e: StoredEvent) {
        position = e.position
        stream_id = e.header.streamID.description
        revision = e.header.revision
        type = e.header.eventType
        event_time = isoTime(e.header.eventTime)
        event_time_us = e.header.eventTime
        event_id = e.header.eventID.description
        causation_id = e.header.causationID.isZero ? nil : e.header.causationID.description
        stored_bytes = e.header.storedLength
        payload_bytes = e.header.uncompressedLength
        compression = e.header.isCompressed ? (e.header.dictionaryID == 0 ? "zstd" : "zstd+dict\(e.header.dictionaryID)") : "none"
        record_crc32c = hexBytes(e.record.suffix(4).reversed())
    }
}

enum PayloadRendering {
    struct Field: Encodable {
        var field: UInt32
        var value: String
    }
    static func fields(_ bytes: [UInt8]) throws -> [Field] {
        try PayloadReader.fields(bytes).map { f in
            switch f.value {
            case .varint(let v): return Field(field: f.field, value: String(v))
            case .fixed64(let v): return Field(field: f.field, value: "0x" + String(v, radix: 16))
            case .bytes(let b): return Field(field: f.field, value: String(validating: b, as: UTF8.self).map { "\"\($0)\"" } ?? "0x" + hexBytes(b))
            }
        }
    }
}

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every record, index and hash chain of the journal; exit 1 at the first problem.",
        discussion: """
            Walks the journal in position order in short read transactions and checks each record's header, \
            CRC-32C, payload, consecutive positions, the event-id index, stream revisions and their index, \
            and each stream's SHA-256 hash chain against the stream table. Reports the first bad position \
            with what was expected and what was found. Prints each stream's chain head with --heads so that \
            an auditor can keep it outside the store.

            With --projections it also folds any new events into the projections, checks the structural \
            invariants of every user's projection state (slots, indexes, supersession links, provenance \
            edges, observation status, erased users empty) and lists the anomalies (events the fold refused).

            With --journal postgres://… (or $PSM_JOURNAL) it checks the journal of record on PostgreSQL \
            instead (SPEC.md §15): every stream's records (CRC, header against its row), revisions without \
            gaps, the event count and the hash chain against the stream table; --against checks a head \
            made by psm tree-head --journal. --projections applies to a store directory only.

            Example:
              psm verify --store ./psm-store --json
              psm verify --projections
              psm verify --journal postgres://psm@db1:5432/psm --json
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "Also print every stream's chain head.") var heads = false
    @Flag(help: "Also check the projections' invariants and list anomalies.") var projections = false
    @Option(name: .customLong("against"), help: ArgumentHelp("Also prove the journal extends this signed tree head (psm tree-head).", valueName: "HEAD.json"))
    var against: String?
    @Option(name: .customLong("public-key"), help: ArgumentHelp("Require the tree head to be signed by this Ed25519 key (64 hex digits).", valueName: "HEX"))
    var publicKey: String?
    @Flag(help: "No progress line on standard error.") var quiet = false

    struct Output: Encodable {
        var ok: Bool
        var events: Int
        var streams: Int
        var last_position: UInt64
        var compressed_events: Int
        var encrypted_events: Int
        var shredded_events: Int
        var problem: Problem?
        var heads: [String: String]?
        var projections: ProjectionCheck?
        var tree_head: TreeHeadCheck?
        var backend: String?
        struct TreeHeadCheck: Encodable { var tenant: String; var tree_size: Int; var extends: Bool; var problem: String? }
        struct Problem: Encodable { var position: UInt64?; var check: String; var expected: String; var found: String }
        struct ProjectionCheck: Encodable { var users: Int; var problems: [String]; var anomalies: [String] }
    }

    func run() async throws {
        if let url = backend.url {
            do {
                guard !projections else {
                    throw CLIError.usage("--projections checks a store directory's projections; drop --journal \(PostgresJournal.redacted(url)) to use it")
                }
                let journal = try await backend.open(url)
                defer { journal.close() }
                let report = try await journal.verifyJournal()
                var headCheck: Output.TreeHeadCheck? = nil
                if let head = try treeHead() {
                    var problem = head.precheck(try pinnedKey())
                    if problem == nil {
                        let (leaves, positions) = try await journal.tenantLeaves(head.tenant)
                        problem = head.extended(by: leaves, positions: positions)
                    }
                    headCheck = .init(tenant: head.tenant, tree_size: head.tree_size, extends: problem == nil, problem: problem)
                }
                try show(report, treeHead: headCheck)
                if let h = headCheck, !json { print(treeHeadLine(h)) }
                if !report.ok || headCheck?.extends == false { throw ExitCode(1) }
            } catch { throw reportedExit(error) }
            return
        }
        try guarded {
            let journal = try store.openJournal()
            defer { journal.close() }
            let total = try journal.stats().lastPosition
            let bar = Progress(label: "verify", total: total, enabled: !quiet && !json)
            let report = try journal.verify { bar.update($0) }
            bar.finish()
            var check: Output.ProjectionCheck? = nil
            if projections {
                let ps = try ProjectionStore(directory: store.storePath + "/projections")
                defer { ps.close() }
                try ps.catchUp(journal)
                var users = 0, problems: [String] = []
                var after: ID128? = nil
                while true {
                    let page = try journal.streams(after: after, limit: 1000)
                    for s in page where UserRef(stream: s.stream) != nil {
                        users += 1
                        problems += try ps.read { kv in try Invariants.check(kv, user: s.stream.id) }.map { "\(s.stream): \($0)" }
                    }
                    guard let last = page.last, page.count == 1000 else { break }
                    after = last.stream.id
                }
                check = .init(users: users, problems: problems, anomalies: try ps.anomalies(limit: 1000).map { "position \($0.position): \($0.reason)" })
            }
            var headCheck: Output.TreeHeadCheck? = nil
            if let head = try treeHead() {
                let problem = try journal.checkExtends(head, publicKey: try pinnedKey())
                headCheck = .init(tenant: head.tenant, tree_size: head.tree_size, extends: problem == nil, problem: problem)
            }
            try show(report, projections: check, treeHead: headCheck)
            if let c = check, !json {
                print("projections: \(c.users) users, \(c.problems.count) invariant problems, \(c.anomalies.count) anomalies")
                for p in (c.problems + c.anomalies).prefix(20) { print("  \(p)") }
            }
            if let h = headCheck, !json { print(treeHeadLine(h)) }
            if !report.ok || (check.map { !$0.problems.isEmpty || !$0.anomalies.isEmpty } ?? false) || headCheck?.extends == false { throw ExitCode(1) }
        }
    }
}

extension VerifyCommand {
    /// The tree head of --against, or nil without it.
    func treeHead() throws -> TreeHead? {
        guard let against else { return nil }
        guard let data = FileManager.default.contents(atPath: against) else { throw CLIError.usage("cannot read --against \(against)") }
        do { return try JSONDecoder().decode(TreeHead.self, from: data) } catch { throw CLIError.data("\(against) is not a tree head: \(error)") }
    }

    /// The key of --public-key, or nil without it.
    func pinnedKey() throws -> [UInt8]? {
        guard let publicKey else { return nil }
        guard publicKey.count == 64, let key = hexDecode(publicKey) else { throw CLIError.usage("--public-key \(publicKey) is not 64 hexadecimal digits") }
        return key
    }

    func treeHeadLine(_ h: Output.TreeHeadCheck) -> String {
        h.extends ? "tree head: the journal extends the signed head of tenant \(h.tenant) (\(h.tree_size) records)" : "tree head: NOT extended: \(h.problem ?? "")"
    }

    /// Prints a verification report as text or JSON.
    func show(_ report: VerificationReport, projections check: Output.ProjectionCheck? = nil, treeHead: Output.TreeHeadCheck? = nil) throws {
        var out = Output(
            ok: report.ok, events: report.events, streams: report.streams, last_position: report.lastPosition,
            compressed_events: report.compressedEvents, encrypted_events: report.encryptedEvents, shredded_events: report.shreddedEvents,
            problem: report.problem.map { .init(position: $0.position, check: $0.check, expected: $0.expected, found: $0.found) },
            heads: heads ? Dictionary(uniqueKeysWithValues: report.heads.map { ($0.key.description, hexBytes($0.value)) }) : nil,
            projections: check)
        out.tree_head = treeHead
        out.backend = backend.url == nil ? "lmdb" : "postgres"
        if json {
            try printJSON(out)
        } else if let p = report.problem {
            Swift.print("FAILED after \(report.events) good events: \(p)")
        } else {
            Swift.print("ok: \(report.events) events in \(report.streams) streams, positions up to \(report.lastPosition), all records, indexes and chains check out")
            if report.encryptedEvents > 0 { Swift.print("    \(report.encryptedEvents) payloads encrypted, \(report.shreddedEvents) of them unreadable by erasure (keys destroyed)") }
            if heads { for (id, h) in report.heads.sorted(by: { $0.key < $1.key }) { Swift.print("  \(id)  \(hexBytes(h))") } }
        }
    }
}

/// `--journal URL` (or $PSM_JOURNAL): the journal of record on PostgreSQL instead of a store's LMDB journal.
struct JournalBackendOptions: ParsableArguments {
    @Option(name: .customLong("journal"), help: ArgumentHelp("The journal of record on PostgreSQL (default: $PSM_JOURNAL; none: the store's LMDB journal).", valueName: "postgres://USER@HOST:PORT/DB"))
    var journal: String?

    /// The PostgreSQL URL in force, or nil for the store's own LMDB journal.
    var url: String? {
        if let journal { return journal }
        if let env = ProcessInfo.processInfo.environment["PSM_JOURNAL"], !env.isEmpty { return env }
        return nil
    }

    /// Opens (and, when new, creates the schema of) the PostgreSQL journal at `url`.
    func open(_ url: String, partitions: Int? = nil) async throws -> PostgresJournal {
        try await PostgresJournal(url: url, partitions: partitions)
    }
}

/// A progress line on standard error for long work (only when it is a terminal or forced).
final class Progress {
    let label: String
    let total: UInt64
    let enabled: Bool
    var lastDraw = 0.0
    init(label: String, total: UInt64, enabled: Bool) {
        self.label = label
        self.total = total
        self.enabled = enabled && isatty(2) == 1
    }
    func update(_ done: UInt64) {
        guard enabled else { return }
        let now = Date().timeIntervalSince1970
        guard now - lastDraw > 0.1 || done == total else { return }
        lastDraw = now
        let fraction = total == 0 ? 1 : min(1, Double(done) / Double(total))
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) [\(bar)] \(done)/\(total)".utf8))
    }
    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}
