import API
import Foundation
import JournalPostgres

/// The cluster's API keys in PostgreSQL (`psm_api_keys`, SPEC.md §15.5): created, listed and revoked
/// with `psm keys … --journal URL`, valid on every node (each refreshes them every round).
enum ClusterKeys {
    static func row(_ k: KeyRecord) -> PostgresJournal.APIKeyRow {
        .init(id: k.id, tenant: k.tenant, scopes: k.scopes.map(\.rawValue).joined(separator: ","), name: k.name, sha256: k.sha256, created: k.created, revoked: k.revoked)
    }

    /// The record of a row; a row with a scope this psm does not know is refused by name.
    static func record(_ r: PostgresJournal.APIKeyRow) throws -> KeyRecord {
        let scopes: [Scope]
        do { scopes = try Scope.parse(r.scopes) } catch { throw CLIError.data("psm_api_keys row \(r.id): \(error)") }
        return KeyRecord(id: r.id, tenant: r.tenant, scopes: scopes, name: r.name, sha256: r.sha256, created: r.created, revoked: r.revoked)
    }

    static func create(_ journal: PostgresJournal, tenant: String, scopes: [Scope], name: String) async throws -> (KeyRecord, String) {
        let (record, key) = try KeyStore.newKey(tenant: tenant, scopes: scopes, name: name)
        try await journal.insertAPIKey(row(record))
        return (record, key)
    }

    static func list(_ journal: PostgresJournal) async throws -> [KeyRecord] { try await journal.apiKeys().map(record) }

    static func revoke(_ journal: PostgresJournal, id: String) async throws -> KeyRecord {
        guard let r = try await journal.revokeAPIKey(id: id, at: WireTime.format(WireTime.now())) else { throw APIError.notFound("no key with id \(id.prefix(40))") }
        return try record(r)
    }
}
