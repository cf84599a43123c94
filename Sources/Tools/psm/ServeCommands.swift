import API
import ArgumentParser
import Cluster
import Engine
import Foundation
import Journal
import JournalPostgres
import Logging
import MCPServer
import Projections
import Server

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API (JSON under /v1, docs/openapi.json) with tenant API keys.",
        discussion: """
            Every route but /v1/health needs a key (Authorization: Bearer psm_…, made by psm keys create); \
            the key alone says which tenant a request acts for. Prints "listening on http://HOST:PORT" \
            when ready (--port 0 picks a free port). SIGINT or SIGTERM stops accepting connections, lets \
            requests in flight finish their journal commits, then exits 0. Logs (stderr, one line per \
            request) carry the route pattern, status, tenant, key id and duration, never user content.

            With --journal postgres://… --node NAME it runs a cluster node (SPEC.md §15.5): the journal of \
            record is PostgreSQL; the node joins the cluster, owns partitions through PostgreSQL advisory \
            locks, keeps LMDB projections of their users in --store, follows their feeds, and answers a \
            request for a user owned by another node with 307 to the same path there (--advertise, default \
            http://HOST:PORT, is the base URL other nodes send to this one). API keys made with \
            psm keys create --journal are the cluster's (held in PostgreSQL, valid on every node); \
            STORE/keys.json still works on its own node. /v1/health shows the node and its partitions. Replay-verify \
            and inclusion proofs read the user's stream and the tenant's tree from PostgreSQL.

            Example:
              psm keys create --tenant acme --scopes memory:read,memory:write
              psm serve --port 8080
              curl -H "Authorization: Bearer $KEY" -d '{"text":"I moved to Lyon"}' localhost:8080/v1/users/alice/observations
              psm serve --store /var/lib/psm --journal postgres://psm@db:5000/psm --node n1 --host 10.0.0.1 --port 8080
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @Option(help: "This node's name in the cluster (with --journal).") var node: String?
    @Option(help: ArgumentHelp("Base URL other nodes redirect to for this node's users (default http://HOST:PORT).", valueName: "URL"))
    var advertise: String?
    @OptionGroup var modelOption: ModelOption
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port).") var port = 8080
    @Option(name: .customLong("max-body"), help: "Largest request body in bytes.") var maxBody = 1 << 20
    @Option(name: .customLong("max-concurrent"), help: "Requests served at once; more get 503.") var maxConcurrent = 64
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, got \(port)") }
        guard (1024...(256 << 20)).contains(maxBody) else { throw ValidationError("--max-body must be 1024...268435456, got \(maxBody)") }
        guard (1...4096).contains(maxConcurrent) else { throw ValidationError("--max-concurrent must be 1...4096, got \(maxConcurrent)") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error, critical") }
    }

    /// The cluster node this server runs as, when --journal is given.
    func clusterNode() async throws -> ClusterNode? {
        guard let url = backend.url else {
            if node != nil { throw CLIError.usage("--node needs --journal postgres://… (the journal of record the nodes share)") }
            return nil
        }
        guard let node else { throw CLIError.usage("--journal needs --node NAME (this node's name in the cluster)") }
        return ClusterNode(journal: try await backend.open(url), url: url, name: node, storeKeys: KeyStore(storeDirectory: store.storePath))
    }

    func run() async throws {
        try await guardedAsync { try await serve() }
    }

    func serve() async throws {
        do {
            try FileManager.default.createDirectory(atPath: store.storePath, withIntermediateDirectories: true)
            let cluster: ClusterNode? = try await clusterNode()
            let engine = try await store.openDecidingEngine(modelOption, quiet: false, at: WireTime.now()) { (engine: Engine) in
                if let cluster { cluster.record = NodeJournal.attach(to: engine, journal: cluster.journal, node: cluster.name) }
            }
            defer { engine.close() }
            var limits = Limits()
            limits.maxBodyBytes = maxBody
            limits.maxConcurrentRequests = maxConcurrent
            var logger = Logger(label: "psm.http")
            logger.logLevel = Logger.Level(rawValue: logLevel)!
            var options = HTTPServer.Options()
            options.host = host
            options.port = port
            let storeKeys = KeyStore(storeDirectory: store.storePath)
            var keys: any KeyAuthority = storeKeys
            var live = try storeKeys.list().contains { $0.revoked == nil }
            if let cluster {
                // The cluster's keys (PostgreSQL) and this store's, refreshed every round.
                try await cluster.refreshKeys()
                keys = cluster.keys
                if !live { live = try await ClusterKeys.list(cluster.journal).contains { $0.revoked == nil } }
            }
            if !live {
                FileHandle.standardError.write(Data("psm: warning: no live API keys in \(storeKeys.path)\(cluster == nil ? "" : " or the cluster"); create one with psm keys create\n".utf8))
            }
            var placement: (@Sendable (UserRef) -> Placement)? = nil
            var health: (@Sendable () -> [String: String])? = nil
            if let cluster {
                placement = { @Sendable (user: UserRef) -> Placement in cluster.placement(user) }
                health = { @Sendable () -> [String: String] in cluster.health() }
            }
            let advertised = advertise
            let host = host
            let nodeLogger = logger
            try await HTTPServer.run(
                service: MemoryService(engine: engine, limits: limits), keys: keys, options: options, logger: logger, placement: placement, health: health
            ) { bound in
                FileHandle.standardOutput.write(Data("listening on http://\(host):\(bound)\n".utf8))
                cluster?.start(address: advertised ?? "http://\(host):\(bound)", logger: nodeLogger)
            }
            await cluster?.stop()
        }
    }
}

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Create, list and revoke the HTTP API's tenant keys.", subcommands: [Create.self, List.self, Revoke.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an API key for one tenant; prints the key once (only its SHA-256 is stored).",
            discussion: """
                Scopes: memory:read (recall with peek/as_of, memories, tiers, provenance, history, export), \
                memory:write (observations, journaled recall, feedback, sleep), journal:read (the user's \
                journal stream, replay-verify), admin (everything, including user erasure). A running \
                server sees new and revoked keys on its next request.

                With --journal postgres://… (or $PSM_JOURNAL) the key is the cluster's: stored in \
                PostgreSQL and valid on every node (nodes refresh the cluster's keys every half second); \
                without it the key is this store's (STORE/keys.json) and valid only on servers of this store.

                Example:
                  psm keys create --tenant acme --scopes memory:read,memory:write --name chat-app
                  psm keys create --tenant acme --scopes journal:read --name auditor --json
                  psm keys create --journal postgres://psm@db1:5432/psm --tenant acme --scopes memory:read,memory:write
                """)
        @OptionGroup var store: StoreOptions
        @OptionGroup var backend: JournalBackendOptions
        @Option(help: "The tenant the key acts for.") var tenant: String
        @Option(help: "Comma-separated scopes: memory:read, memory:write, journal:read, admin.") var scopes: String
        @Option(help: "A label for the key (who holds it).") var name = ""
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            do {
                let record: KeyRecord, key: String
                if let url = backend.url {
                    let journal = try await backend.open(url)
                    defer { journal.close() }
                    (record, key) = try await ClusterKeys.create(journal, tenant: tenant, scopes: try Scope.parse(scopes), name: name)
                } else {
                    try FileManager.default.createDirectory(atPath: store.storePath, withIntermediateDirectories: true)
                    (record, key) = try KeyStore(storeDirectory: store.storePath).create(tenant: tenant, scopes: try Scope.parse(scopes), name: name)
                }
                struct Out: Encodable { var key: String; var id: String; var tenant: String; var scopes: [String] }
                if json { try printJSON(Out(key: key, id: record.id, tenant: record.tenant, scopes: record.scopes.map(\.rawValue))); return }
                print(key)
                FileHandle.standardError.write(Data("key \(record.id) for tenant \(record.tenant) (\(record.scopes.map(\.rawValue).joined(separator: ","))); store it now, it is not shown again\n".utf8))
            } catch { throw reportedExit(error) }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List keys (id, tenant, scopes, name, created, revoked); never the keys themselves.",
            discussion: """
                With --journal: the cluster's keys in PostgreSQL.

                Example:
                  psm keys list --json
                """)
        @OptionGroup var store: StoreOptions
        @OptionGroup var backend: JournalBackendOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            do {
                let keys: [KeyRecord]
                if let url = backend.url {
                    let journal = try await backend.open(url)
                    defer { journal.close() }
                    keys = try await ClusterKeys.list(journal)
                } else {
                    keys = try KeyStore(storeDirectory: store.storePath).list()
                }
                struct Out: Encodable { var id, tenant, name, created: String; var scopes: [String]; var revoked: String? }
                if json { try printJSON(keys.map { Out(id: $0.id, tenant: $0.tenant, name: $0.name, created: $0.created, scopes: $0.scopes.map(\.rawValue), revoked: $0.revoked) }); return }
                if keys.isEmpty { print("no keys") }
                for k in keys {
                    print("\(k.id)  \(k.tenant)  \(k.scopes.map(\.rawValue).joined(separator: ","))  \(k.name.isEmpty ? "-" : k.name)  created \(k.created)\(k.revoked.map { "  REVOKED \($0)" } ?? "")")
                }
            } catch { throw reportedExit(error) }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a key by its id; it stops working at once (the record is kept for audit).",
            discussion: """
                With --journal: a cluster key; nodes stop accepting it within half a second.

                Example:
                  psm keys revoke 3f9c0a1b2c3d4e5f
                """)
        @OptionGroup var store: StoreOptions
        @OptionGroup var backend: JournalBackendOptions
        @Argument(help: "The key id (psm keys list).") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            do {
                let r: KeyRecord
                if let url = backend.url {
                    let journal = try await backend.open(url)
                    defer { journal.close() }
                    r = try await ClusterKeys.revoke(journal, id: id)
                } else {
                    r = try KeyStore(storeDirectory: store.storePath).revoke(id: id)
                }
                struct Out: Encodable { var id: String; var revoked: String }
                if json { try printJSON(Out(id: r.id, revoked: r.revoked ?? "")) } else { print("key \(r.id) revoked at \(r.revoked ?? "")") }
            } catch { throw reportedExit(error) }
        }
    }
}

struct MCPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve one user's memory to an agent host over MCP (stdio): remember, recall, feedback, provenance.",
        discussion: """
            Speaks the Model Context Protocol on standard input and output until the host closes them. \
            Configure an agent host with, for example:
              {"mcpServers": {"memory": {"command": "psm", "args": ["mcp", "--store", "/path/store", "--user", "alice"]}}}

            With --journal postgres://… (or $PSM_JOURNAL) the memory lives in a cluster's journal of \
            record (SPEC.md §15.5): the server writes there and, before each tool call, folds the user's \
            stream from there into --store's projections, so it answers like the cluster's nodes whoever \
            wrote last. It owns no partitions (one user, one agent host).

            Example:
              psm mcp --store ./psm-store --tenant acme --user alice
              psm mcp --store ./mcp-cache --journal postgres://psm@db1:5432/psm --tenant acme --user alice
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var who: UserOptions
    @OptionGroup var modelOption: ModelOption

    func run() async throws {
        try await guardedAsync {
            try FileManager.default.createDirectory(atPath: store.storePath, withIntermediateDirectories: true)
            var journal: PostgresJournal? = nil
            if let url = backend.url { journal = try await backend.open(url) }
            defer { journal?.close() }
            let engine = try await store.openDecidingEngine(modelOption, quiet: true, at: WireTime.now()) { (engine: Engine) in
                if let journal { _ = NodeJournal.attach(to: engine, journal: journal, node: "mcp-\(getpid())") }
            }
            defer { engine.close() }
            try await MCPServer.run(service: MemoryService(engine: engine), user: try who.ref(), version: "0.3")
        }
    }
}

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a user's memories (every tier) with all metadata and provenance, as JSONL.",
        discussion: """
            One line per memory: {"memory": {…every field of psm memory show --json…}, "provenance": {…}}. \
            Writes to --out FILE (atomically: a temporary file renamed into place) or standard output.

            Example:
              psm export --user alice --out alice.jsonl
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var who: UserOptions
    @Option(help: "Only jsonl is supported.") var format = "jsonl"
    @Option(help: ArgumentHelp("Output file (default: standard output).", valueName: "FILE")) var out: String?

    func validate() throws {
        guard format == "jsonl" else { throw ValidationError("--format \(format) is not supported (accepted: jsonl)") }
    }

    func run() async throws {
        try await guardedAsync {
            let ref = try who.ref()
            let opened = try await store.openEngine(backend, for: ref)
            defer { opened.close() }
            let lines = try MemoryService(engine: opened.engine).export(ref)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var data = Data()
            for l in lines {
                data.append(try encoder.encode(l))
                data.append(0x0A)
            }
            if let out {
                do { try data.write(to: URL(fileURLWithPath: out), options: .atomic) } catch { throw CLIError.io("cannot write \(out): \(error.localizedDescription)") }
                FileHandle.standardError.write(Data("exported \(lines.count) memories to \(out)\n".utf8))
            } else {
                FileHandle.standardOutput.write(data)
            }
        }
    }
}

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a self-contained HTML audit report for one user (no network needed to view it).",
        discussion: """
            The report shows each tracked memory's strength over time with the decisions that changed it \
            (an SVG plot: created, reinforced, weakened, superseded, recalled, consolidated, archived), \
            the tier timeline, the provenance tree of one memory down to the source turns, the models that \
            decided, and the decision log with model ids and input digests. Everything comes from the \
            user's journal stream, folded event by event.

            Example:
              psm report --user alice --out alice.html
              psm report --user alice --memory 0f3c…e1 --memories 4 --out alice.html
              psm report --journal postgres://psm@db1:5432/psm --tenant acme --user alice --out alice.html
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var who: UserOptions
    @Option(help: ArgumentHelp("Output HTML file.", valueName: "FILE")) var out: String
    @Option(help: ArgumentHelp("The memory whose provenance is shown and which is plotted first.", valueName: "ID")) var memory: String?
    @Option(help: "How many memories to plot (1...20).") var memories = 8
    @Option(help: "Rows of the decision log (1...100000).") var decisions = 500
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (1...20).contains(memories) else { throw ValidationError("--memories must be 1...20, got \(memories)") }
        guard (1...100_000).contains(decisions) else { throw ValidationError("--decisions must be 1...100000, got \(decisions)") }
    }

    func run() async throws {
        try await guardedAsync {
            let opened = try await store.openEngine(backend, for: try who.ref())
            defer { opened.close() }
            let engine = opened.engine
            var options = AuditReport.Options()
            options.memories = memories
            options.decisionRows = decisions
            options.focus = try memory.map { try parseID($0) }
            let html = try await AuditReport.render(engine: engine, user: try who.ref(), options: options)
            do { try Data(html.utf8).write(to: URL(fileURLWithPath: out), options: .atomic) } catch { throw CLIError.io("cannot write \(out): \(error.localizedDescription)") }
            struct Out: Encodable { var file: String; var bytes: Int }
            if json { try printJSON(Out(file: out, bytes: html.utf8.count)) } else { print("wrote \(out) (\(html.utf8.count) bytes)") }
        }
    }
}

/// A `psm serve` cluster node (SPEC.md §15.5): joins the cluster once the server listens, then every
/// half second rebalances its partitions (adopting gained ones before serving them), follows their
/// feeds, and refreshes who owns the others (for redirects). If its lock connection is lost it serves
/// nothing until it has rejoined.
final class ClusterNode: @unchecked Sendable {
    let journal: PostgresJournal
    let url: String
    let name: String
    var record: NodeJournal?
    private let lock = NSLock()
    private var ready: Set<Int> = []
    private var owners: [Int: String] = [:]
    private var address = ""
    private var loop: Task<Void, Never>?
    private var ownership: PartitionOwnership?

    /// The cluster's keys from PostgreSQL after this store's own.
    let keys: KeyList

    init(journal: PostgresJournal, url: String, name: String, storeKeys: KeyStore) {
        self.journal = journal
        self.url = url
        self.name = name
        keys = KeyList(fallback: storeKeys)
    }

    /// Reloads the cluster's API keys (new and revoked ones take effect here).
    func refreshKeys() async throws { keys.replace(try await ClusterKeys.list(journal)) }

    func placement(_ user: UserRef) -> Placement {
        let p = journal.partition(of: user.key)
        return lock.withLock {
            if ready.contains(p) { return .here }
            if let owner = owners[p], owner != address, !owner.isEmpty { return .elsewhere(owner) }
            return .unowned(partition: p)
        }
    }

    func health() -> [String: String] {
        lock.withLock { ["node": name, "partitions": String(ready.count), "partitions_total": String(journal.partitions)] }
    }

    func start(address: String, logger: Logger) {
        lock.withLock { self.address = address }
        loop = Task { [self] in
            while !Task.isCancelled {
                do {
                    try await round(address: address)
                } catch {
                    logger.error("cluster node \(name): \(error); rejoining")
                    lock.withLock { ready.removeAll() }
                    if let o = ownership { await o.leave() }
                    ownership = nil
                }
                try? await Task.sleep(nanoseconds: 500_000_000)
            }
        }
    }

    private func round(address: String) async throws {
        guard let record else { return }
        if ownership == nil {
            ownership = try await PartitionOwnership(journal: journal, url: url, node: name, address: address)
        }
        guard let ownership else { return }
        let change = try await ownership.rebalance()
        for p in change.lost {
            _ = lock.withLock { ready.remove(p) }
            record.projector.release(p)
        }
        for p in change.gained {
            try await record.projector.adopt(p)
            _ = lock.withLock { ready.insert(p) }
        }
        try await record.projector.poll()
        try await refreshKeys()
        let status = try await ClusterStatus.read(journal)
        let addresses = Dictionary(status.nodes.map { ($0.name, $0.address) }, uniquingKeysWith: { a, _ in a })
        var map: [Int: String] = [:]
        for p in status.partitions { if let o = p.owner { map[p.partition] = addresses[o] } }
        lock.withLock { owners = map }
    }

    func stop() async {
        loop?.cancel()
        _ = await loop?.value
        if let o = ownership { await o.leave() }
        journal.close()
    }
}
