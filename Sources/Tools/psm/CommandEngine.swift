import Cluster
import Engine
import Foundation
import JournalPostgres
import Projections

/// The engine a memory command runs on: the store's own, or with --journal postgres://… (or
/// $PSM_JOURNAL) an engine whose journal of record is the cluster's PostgreSQL journal (SPEC.md §15.5).
/// It owns no partition: --store then only holds a local cache of projections, and the user's stream
/// is folded from the journal of record before the command reads or decides, so the command answers
/// as the cluster's nodes do.
struct CommandEngine {
    let engine: Engine
    let cluster: PostgresJournal?

    func close() {
        engine.close()
        cluster?.close()
    }
}

extension JournalBackendOptions {
    func openIfGiven() async throws -> PostgresJournal? {
        guard let url else { return nil }
        return try await open(url)
    }
}

extension StoreOptions {
    /// The engine of a reading (or erasing) command for `user`, caught up with its stream.
    func openEngine(_ backend: JournalBackendOptions, for user: UserRef) async throws -> CommandEngine {
        guard let journal = try await backend.openIfGiven() else { return CommandEngine(engine: try openEngine(), cluster: nil) }
        do {
            try FileManager.default.createDirectory(atPath: storePath, withIntermediateDirectories: true)
            let engine = try Engine(directory: storePath)
            NodeJournal.attach(to: engine, journal: journal, node: "cli-\(getpid())")
            do { try await engine.refresh(user) } catch {
                engine.close()
                throw error
            }
            return CommandEngine(engine: engine, cluster: journal)
        } catch {
            journal.close()
            throw error
        }
    }

    /// The engine of a deciding command (with the model), over the cluster's journal with --journal.
    func openDecidingEngine(_ model: ModelOption, quiet: Bool, at time: Int64, backend: JournalBackendOptions) async throws -> CommandEngine {
        let journal = try await backend.openIfGiven()
        do {
            let engine = try await openDecidingEngine(model, quiet: quiet, at: time) { (engine: Engine) in
                if let journal { NodeJournal.attach(to: engine, journal: journal, node: "cli-\(getpid())") }
            }
            return CommandEngine(engine: engine, cluster: journal)
        } catch {
            journal?.close()
            throw error
        }
    }
}
