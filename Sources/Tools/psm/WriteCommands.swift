import ArgumentParser
import Engine
import Foundation
import Inference
import Journal
import JournalPostgres
import Projections
import API

/// `--model` for the commands that decide: --model, $PSM_MODEL, the default PSM model if built, else
/// the store's encoder (imported from $PSM_MINILM_DIR on first use).
struct ModelOption: ParsableArguments {
    @Option(help: ArgumentHelp("PSM or encoder model file (default: $PSM_MODEL, the default PSM model, else the store's encoder).", valueName: "FILE"))
    var model: String?

    /// The model whose id is `active` among the candidates (--model, $PSM_MODEL, the default PSM
    /// model, the store's encoder), else the usual resolution.
    func resolve(_ store: StoreOptions, quiet: Bool, matching active: [UInt8]?) throws -> ModelFile? {
        guard let active else { return try resolve(store, quiet: quiet) }
        let want = hexBytes(active)
        let paths = [model, ProcessInfo.processInfo.environment["PSM_MODEL"], ModelDefault.path, store.storePath + "/models/encoder.psm"].compactMap { $0 }
        for p in paths where !p.isEmpty && FileManager.default.fileExists(atPath: p) {
            if let f = try? ModelFile(path: p), f.id == want { return f }
        }
        let file = try resolve(store, quiet: quiet)
        // Replaying with another model re-decides differently: say so before the report does.
        let using = file.map { "\($0.id.prefix(16))… (\($0.path))" } ?? "the rule baseline without an encoder"
        FileHandle.standardError.write(Data(
            "psm: warning: the store's active model \(want.prefix(16))… is not --model, $PSM_MODEL, the default PSM model or the store's encoder; using \(using), so its decisions may differ: pass --model FILE with the model that made them\n".utf8))
        return file
    }

    func resolve(_ store: StoreOptions, quiet: Bool) throws -> ModelFile? {
        if let explicit = model ?? ProcessInfo.processInfo.environment["PSM_MODEL"].flatMap({ $0.isEmpty ? nil : $0 }) {
            return try ModelFile(path: explicit)
        }
        if FileManager.default.fileExists(atPath: ModelDefault.path) { return try ModelFile(path: ModelDefault.path) }
        return try store.encoderModel(nil, quiet: quiet)
    }
}

extension StoreOptions {
    /// Opens (creating if needed) the store with the model's policy and checks the store's active model.
    /// `configure` runs before the model activation is checked (a cluster node attaches its journal of
    /// record there).
    func openDecidingEngine(
        _ model: ModelOption, quiet: Bool, adopt: Bool = false, at time: Int64, configure: ((Engine) throws -> Void)? = nil
    ) async throws -> Engine {
        let file = try model.resolve(self, quiet: quiet)
        let engine = try Engine(
            directory: storePath, encoder: try file.map { try Encoder(model: $0) }, policy: try file.map { try policy(for: $0) } ?? RuleBaseline())
        do {
            try configure?(engine)
            try await engine.ensureActiveModel(name: file.map { URL(fileURLWithPath: $0.path).lastPathComponent } ?? "", adopt: adopt, at: time)
        } catch {
            engine.close()
            throw error
        }
        return engine
    }
}

/// Event time for a command: --at, else now (the CLI is the caller that supplies event time).
func eventTime(_ at: String?) throws -> Int64 {
    if let at { return try parseTime(at, option: "--at") }
    return WireTime.now()
}

/// Runs an async command body with the CLI's error reporting.
func guardedAsync(_ body: () async throws -> Void) async throws {
    do { try await body() } catch { throw reportedExit(error) }
}

struct ObserveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "observe",
        abstract: "Record one observation; the model's gate decides whether and how it is remembered.",
        discussion: """
            Appends the observation and the gate's decision in one atomic append. --id makes a retry \
            exactly-once (the same id and content returns the original result).

            Example:
              psm observe --user alice --session s1 --speaker Alice --source-id msg-17 "I'm allergic to shellfish"
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var who: UserOptions
    @OptionGroup var modelOption: ModelOption
    @Option(help: "Session id.") var session: String = ""
    @Option(help: "Who said it.") var speaker: String = ""
    @Option(help: "Role (user, assistant, …).") var role: String = ""
    @Option(name: .customLong("source-id"), help: "The app's own id for this turn (reported by provenance).") var sourceID: String = ""
    @Option(help: ArgumentHelp("Event time (ISO 8601; default: now).", valueName: "TIME")) var at: String?
    @Option(help: ArgumentHelp("Event id (32 hex digits) for exactly-once retries.", valueName: "ID")) var id: String?
    @Argument(help: "The observed text.") var text: String
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guardedAsync {
            let time = try eventTime(at)
            let opened = try await store.openDecidingEngine(modelOption, quiet: json, at: time, backend: backend)
            defer { opened.close() }
            let engine = opened.engine
            let r = try await engine.observe(
                try who.ref(), .init(text: text, session: session, speaker: speaker, role: role, sourceID: sourceID), at: time,
                id: try id.map { try parseID($0, what: "--id") })
            let out = ObserveJSON(r)
            if json { try printJSON(out); return }
            print("observation \(out.observation) at position \(r.position)\(r.wasDuplicate ? " (already recorded)" : "")")
            print(r.kept ? "kept as memory \(out.memory!)\(out.tier.map { " in \($0)" } ?? "")" : "dropped by the gate")
            if let x = out.relation { print("it \(x.kind) memory \(x.memory) (score " + String(format: "%.4f", x.score) + ")") }
        }
    }
}

struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Record observations from a JSONL file, one per line, with a progress bar and a summary.",
        discussion: """
            Each line is a JSON object: {"text": "...", "at": "2026-03-01T12:00:00Z", "session": "...", \
            "speaker": "...", "role": "...", "source_id": "...", "id": "<32 hex digits>"}; only "text" is \
            required ("at" defaults to one second after the previous line). Every line is one atomic append \
            of the observation and its gate decision. A bad line stops the ingest with its line number; \
            the lines before it stay recorded, and re-running with the same ids skips them (exactly-once).

            Example:
              psm ingest conversation.jsonl --user alice --json
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var who: UserOptions
    @OptionGroup var modelOption: ModelOption
    @Argument(help: "A JSONL file of observations.") var file: String
    @Flag(help: "Print JSON.") var json = false

    struct Output: Encodable { var lines: Int; var recorded: Int; var duplicates: Int; var kept: Int; var dropped: Int; var seconds: Double }

    func run() async throws {
        try await guardedAsync {
            guard let data = FileManager.default.contents(atPath: file) else { throw CLIError.usage("cannot read \(file)") }
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            var parsed: [(Int, MemoryEvent.Observation, Int64?, EventID?)] = []
            for (n, line) in lines.enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                func bad(_ m: String) -> CLIError { .data("\(file):\(n + 1): \(m)") }
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { throw bad("not a JSON object") }
                let known: Set<String> = ["text", "at", "session", "speaker", "role", "source_id", "id"]
                if let extra = obj.keys.sorted().first(where: { !known.contains($0) }) { throw bad("unknown field \"\(extra)\" (known: \(known.sorted().joined(separator: ", ")))") }
                guard let text = obj["text"] as? String, !text.isEmpty else { throw bad("\"text\" must be a non-empty string") }
                func str(_ k: String) throws -> String {
                    guard let v = obj[k] else { return "" }
                    guard let s = v as? String else { throw bad("\"\(k)\" must be a string") }
                    return s
                }
                let at = try (obj["at"] as? String).map { s -> Int64 in
                    do { return try parseTime(s, option: "\"at\"") } catch { throw bad("\"at\" \(s) is not an ISO 8601 time") }
                }
                let id = try (obj["id"] as? String).map { s -> EventID in
                    do { return try parseID(s, what: "\"id\"") } catch { throw bad("\"id\" \(s) is not 32 hexadecimal digits") }
                }
                parsed.append((n + 1, .init(text: text, session: try str("session"), speaker: try str("speaker"), role: try str("role"), sourceID: try str("source_id")), at, id))
            }
            guard !parsed.isEmpty else { throw CLIError.usage("\(file) has no observations") }
            let firstTime = try parsed[0].2 ?? eventTime(nil)
            let opened = try await store.openDecidingEngine(modelOption, quiet: json, at: firstTime, backend: backend)
            defer { opened.close() }
            let engine = opened.engine
            let user = try who.ref()
            let bar = Progress(label: "ingest", total: UInt64(parsed.count), enabled: !json)
            let start = Date()
            var out = Output(lines: parsed.count, recorded: 0, duplicates: 0, kept: 0, dropped: 0, seconds: 0)
            var time = firstTime
            for (i, (line, o, at, id)) in parsed.enumerated() {
                time = at ?? (i == 0 ? firstTime : time + 1_000_000)
                do {
                    let r = try await engine.observe(user, o, at: time, id: id)
                    if r.wasDuplicate { out.duplicates += 1 } else { out.recorded += 1 }
                    if r.kept { out.kept += 1 } else { out.dropped += 1 }
                } catch {
                    bar.finish()
                    throw CLIError.from(error).prefixed("\(file):\(line): ")
                }
                bar.update(UInt64(i + 1))
            }
            bar.finish()
            out.seconds = Date().timeIntervalSince(start)
            if json { try printJSON(out); return }
            print("\(out.lines) observations: \(out.recorded) recorded, \(out.duplicates) already present; \(out.kept) kept, \(out.dropped) dropped by the gate (\(String(format: "%.1f", out.seconds)) s)")
        }
    }
}

extension CLIError {
    func prefixed(_ p: String) -> CLIError {
        switch self {
        case .usage(let m): .usage(p + m)
        case .data(let m): .data(p + m)
        case .io(let m): .io(p + m)
        case .checkFailed(let m): .checkFailed(p + m)
        }
    }
}

struct RecallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recall",
        abstract: "Recall the memories the model weighs highest for a query, with features and provenance.",
        discussion: """
            A recall is journaled (the request and exactly what was surfaced), so feedback can refer to it \
            and auditors can see what an LLM was shown. With --as-of it answers as of a past journal \
            position or time and writes nothing; --peek answers now and writes nothing.

            Example:
              psm recall --user alice --k 5 "what can't she eat?"
              psm recall --user alice --as-of 2026-03-01T00:00:00Z --json "where does she live?"
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var who: UserOptions
    @OptionGroup var modelOption: ModelOption
    @Option(help: "Memories to return (1...1024).") var k: Int = 5
    @Option(help: ArgumentHelp("Event time of the recall (ISO 8601; default: now).", valueName: "TIME")) var at: String?
    @Option(name: .customLong("as-of"), help: ArgumentHelp("Answer as of a journal position or event time; writes nothing.", valueName: "POS|TIME"))
    var asOf: String?
    @Flag(help: "Answer now without journaling the recall.") var peek = false
    @Option(help: "Session id.") var session: String = ""
    @Argument(help: "The query.") var query: String
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (1...1024).contains(k) else { throw ValidationError("--k must be 1...1024, got \(k)") }
    }

    func run() async throws {
        try await guardedAsync {
            let time = try eventTime(at)
            let opened = try await store.openDecidingEngine(modelOption, quiet: json, at: time, backend: backend)
            defer { opened.close() }
            let engine = opened.engine
            let user = try who.ref()
            let asOfPoint = try TimeOptions.parse(asOf.map { ["--as-of", $0] } ?? []).parsedAsOf()
            let r: Engine.RecallResult
            if let asOfPoint {
                r = try await engine.withAsOf(user, asOfPoint) { try engine.recall(user, query: query, k: k, asOf: asOfPoint, at: at.map { _ in time }) }
            } else if peek {
                try await engine.refresh(user)
                r = try engine.peek(user, query: query, k: k, at: time)
            } else {
                r = try await engine.recall(user, query: query, k: k, at: time, session: session)
            }
            let out = RecallJSON(r, query: query)
            let items = out.memories
            if json { try printJSON(out); return }
            if let id = r.recall { print("recall \(id) (position \(r.position!)), \(r.candidatesConsidered) candidates") } else { print("\(r.candidatesConsidered) candidates (nothing journaled)") }
            if !out.time_cues.isEmpty { print("time cues: \(out.time_cues.joined(separator: ", ")) (memories said then weigh more)") }
            for (i, m) in items.enumerated() {
                print(String(format: "%2d. %@  w=%.4f  [%@ s=%.3f%@]  %@", i + 1, m.memory, m.weight, m.tier, m.strength, m.valid ? "" : " superseded", String(m.text.prefix(80))))
                if !m.source_ids.isEmpty { print("    sources: \(m.source_ids.joined(separator: ", "))") }
            }
        }
    }
}

struct FeedbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "feedback",
        abstract: "Say whether a recalled memory helped; the model reinforces or weakens it.",
        discussion: """
            Example:
              psm feedback --user alice --recall 01f3…9a --memory 7c2d…e0 --kind helped
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var who: UserOptions
    @OptionGroup var modelOption: ModelOption
    @Option(help: ArgumentHelp("The recall's id (printed by psm recall).", valueName: "ID")) var recall: String
    @Option(help: ArgumentHelp("The memory the feedback is about.", valueName: "ID")) var memory: String
    @Option(help: "helped, irrelevant or corrected.") var kind: String
    @Option(help: "A note (e.g. the correction).") var note: String = ""
    @Option(help: ArgumentHelp("Event time (ISO 8601; default: now).", valueName: "TIME")) var at: String?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard FeedbackKind(name: kind) != nil else { throw ValidationError("--kind must be helped, irrelevant or corrected, got \(kind)") }
    }

    func run() async throws {
        try await guardedAsync {
            let time = try eventTime(at)
            let opened = try await store.openDecidingEngine(modelOption, quiet: json, at: time, backend: backend)
            defer { opened.close() }
            let engine = opened.engine
            let user = try who.ref(), m = try parseID(memory)
            let p = try await engine.feedback(user, recall: try parseID(recall, what: "--recall"), memory: m, kind: FeedbackKind(name: kind)!, note: note, at: time)
            let v = try engine.memory(user, m, at: time)
            let out = FeedbackJSON(position: p, memory: m.description, strength: (v.strength * 1e4).rounded() / 1e4, stability_s: v.record.stability)
            if json { try printJSON(out) } else { print("feedback recorded at position \(p); memory strength now \(out.strength), stability \(String(format: "%.1f", Double(out.stability_s) / 86_400)) days") }
        }
    }
}

struct SleepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sleep",
        abstract: "Sleep-time reorganisation: tier moves, consolidation into semantic memories, pruning to archival.",
        discussion: """
            Runs for one user (--user) or for every user of the tenant. Every change is a decision event.

            Example:
              psm sleep --user alice
              psm sleep --tenant acme --json
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var modelOption: ModelOption
    @Option(help: ArgumentHelp("Tenant (default: $PSM_TENANT, else \"default\").", valueName: "TENANT")) var tenant: String?
    @Option(help: ArgumentHelp("Only this user (default: every user of the tenant).", valueName: "USER")) var user: String?
    @Option(help: ArgumentHelp("Event time (ISO 8601; default: now).", valueName: "TIME")) var at: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        try await guardedAsync {
            let time = try eventTime(at)
            let opened = try await store.openDecidingEngine(modelOption, quiet: json, at: time, backend: backend)
            defer { opened.close() }
            let engine = opened.engine
            let t = tenant ?? ProcessInfo.processInfo.environment["PSM_TENANT"].flatMap { $0.isEmpty ? nil : $0 } ?? "default"
            var users: [UserRef] = []
            if let user {
                users = [try UserOptions.parse(["--tenant", t, "--user", user]).ref()]
            } else if let cluster = opened.cluster {
                // Every user of the tenant in the cluster's journal of record, whichever node owns them.
                for p in 0..<cluster.partitions {
                    for s in try await cluster.streams(inPartition: p) { if s.stream.tenant == t, let u = UserRef(stream: s.stream) { users.append(u) } }
                }
                users.sort { $0.user < $1.user }
            } else {
                var after: ID128? = nil
                while true {
                    let page = try engine.journal.streams(after: after, limit: 1000)
                    for s in page { if s.stream.tenant == t, let u = UserRef(stream: s.stream) { users.append(u) } }
                    guard let last = page.last, page.count == 1000 else { break }
                    after = last.stream.id
                }
                users.sort { $0.user < $1.user }
            }
            var entries: [SleepJSON] = []
            for u in users {
                try await engine.refresh(u)
                // A user named with --user must exist (and not be erased); a tenant-wide sweep skips erased users.
                if user != nil { _ = try engine.userRecord(u) } else if (try? engine.userRecord(u)) == nil { continue }
                let r = try await engine.sleep(u, at: time)
                entries.append(SleepJSON(user: u.user, position: r.position, decisions: Dictionary(uniqueKeysWithValues: r.decisions.map { ($0.key.description, $0.value) })))
            }
            if json { try printJSON(entries); return }
            for e in entries {
                let d = e.decisions.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                print("\(e.user): \(d.isEmpty ? "nothing to do" : d)")
            }
            if entries.isEmpty { print("no users of tenant \(t)") }
        }
    }
}

struct EraseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "erase",
        abstract: "Erase a user: journal an erasure request; every read of the user then answers 'erased'.",
        discussion: """
            The request is an event in the user's stream (the journal stays immutable); the projections \
            drop the user's memories and indexes, and later writes for the user are refused.

            Example:
              psm erase --user alice --reason "user asked" --yes
            """)
    @OptionGroup var store: StoreOptions
    @OptionGroup var backend: JournalBackendOptions
    @OptionGroup var who: UserOptions
    @Option(help: "Why (recorded in the journal).") var reason: String = ""
    @Option(help: ArgumentHelp("Event time (ISO 8601; default: now).", valueName: "TIME")) var at: String?
    @Flag(help: "Confirm: erasing cannot be undone through psm.") var yes = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard yes else { throw ValidationError("erasing a user cannot be undone; pass --yes to confirm") }
    }

    func run() async throws {
        try await guardedAsync {
            let user = try who.ref()
            let opened = try await store.openEngine(backend, for: user)
            defer { opened.close() }
            let engine = opened.engine
            let p = try await engine.erase(user, reason: reason, at: try eventTime(at))
            struct Out: Encodable { var user: String; var position: UInt64 }
            if json { try printJSON(Out(user: user.user, position: p)) } else { print("erased \(user) at position \(p)") }
        }
    }
}
