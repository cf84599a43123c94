import ArgumentParser
import Cluster
import Foundation
import Journal
import JournalPostgres

/// `psm cluster …`: the journal of record on PostgreSQL and the nodes over it (SPEC.md §15).
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Set up and inspect a PostgreSQL journal of record and the PSM nodes that own its partitions.",
        subcommands: [Init.self, Status.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the database (when missing) and the PSM schema of a PostgreSQL journal.",
            discussion: """
                Creates the database the URL names when the server has none of that name, then the schema \
                (SPEC.md §15.1) with the given partition count, fixed from then on. Running it again is safe: \
                an existing schema is kept (another --partitions is refused). Prints the partition count.

                Example:
                  psm cluster init --journal postgres://psm@db1:5432/psm --partitions 64 --json
                """)
        @OptionGroup var backend: JournalBackendOptions
        @Option(help: "Partitions for a new journal (1-4096; default 64; fixed once created).") var partitions: Int?
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            do {
                let url = try backend.required()
                let created = try await PostgresJournal.createDatabaseIfMissing(url)
                let journal = try await backend.open(url, partitions: partitions)
                defer { journal.close() }
                if json {
                    struct Output: Encodable { var journal: String; var partitions: Int; var schema_version: Int; var database_created: Bool }
                    try printJSON(Output(journal: journal.url, partitions: journal.partitions, schema_version: PostgresJournal.schemaVersion, database_created: created))
                } else {
                    print("\(journal.url): schema version \(PostgresJournal.schemaVersion), \(journal.partitions) partitions\(created ? " (database created)" : "")")
                }
            } catch { throw reportedExit(error) }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the live nodes, which partitions each owns, and each partition's events and feed lag.",
            discussion: """
                A node is live while it holds its PostgreSQL advisory lock; a partition's owner is the live \
                node holding the partition's lock (SPEC.md §15.5). Lag is the number of the partition's \
                events beyond the feed cursor its owner last recorded. Exit 1 when a partition has no owner \
                while at least one node is live.

                Example:
                  psm cluster status --journal postgres://psm@db1:5432/psm --json
                """)
        @OptionGroup var backend: JournalBackendOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            do {
                let url = try backend.required()
                let journal = try await backend.open(url)
                defer { journal.close() }
                let status = try await ClusterStatus.read(journal)
                if json {
                    try printJSON(status)
                } else {
                    print("\(journal.url): \(status.partitions_total) partitions, \(status.nodes.count) live nodes")
                    for n in status.nodes {
                        let lag = status.partitions.filter { $0.owner == n.name }.compactMap(\.lag).reduce(0, +)
                        print("  \(n.name)  \(n.address.isEmpty ? "-" : n.address)  \(n.partitions.count) partitions  lag \(lag) events")
                    }
                    if !status.unowned.isEmpty { print("  unowned partitions: \(status.unowned.map(String.init).joined(separator: ","))") }
                }
                if !status.nodes.isEmpty && !status.unowned.isEmpty { throw ExitCode(1) }
            } catch { throw reportedExit(error) }
        }
    }
}

extension JournalBackendOptions {
    /// The URL, or a usage error saying how to give one.
    func required() throws -> String {
        guard let url else { throw CLIError.usage("no PostgreSQL journal: pass --journal postgres://USER@HOST:PORT/DB or set PSM_JOURNAL") }
        return url
    }
}
