import Crypto
import Foundation

/// Merkle trees over records (RFC 6962 §2.1), one per tenant, for tamper evidence (SPEC.md §8.1).
/// Leaf hash = SHA-256(0x00 ‖ record bytes); node hash = SHA-256(0x01 ‖ left ‖ right); the tree over n
/// leaves splits at the largest power of two below n.
public enum Merkle {
    public static func leafHash(_ record: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(data: [0])
        h.update(data: record)
        return Array(h.finalize())
    }

    public static func nodeHash(_ l: [UInt8], _ r: [UInt8]) -> [UInt8] {
        var h = SHA256()
        h.update(data: [1])
        h.update(data: l)
        h.update(data: r)
        return Array(h.finalize())
    }

    /// The empty tree's root: SHA-256 of nothing.
    public static let emptyRoot: [UInt8] = Array(SHA256.hash(data: [UInt8]()))

    static func split(_ n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }

    /// MTH(D[lo..<hi]) over leaf hashes.
    public static func root(_ leaves: ArraySlice<[UInt8]>) -> [UInt8] {
        let n = leaves.count
        if n == 0 { return emptyRoot }
        if n == 1 { return leaves.first! }
        // Iterative: repeatedly hash pairs, carrying an odd last node up (equivalent to RFC 6962's split
        // at the largest power of two for the left subtree).
        var level = Array(leaves)
        while level.count > 1 {
            var next: [[UInt8]] = []
            next.reserveCapacity((level.count + 1) / 2)
            var i = 0
            while i + 1 < level.count {
                next.append(nodeHash(level[i], level[i + 1]))
                i += 2
            }
            if i < level.count { next.append(level[i]) }
            level = next
        }
        return level[0]
    }

    /// PATH(m, D[n]): the audit path proving leaf `m` is in the tree of `leaves`.
    public static func inclusionProof(_ m: Int, _ leaves: ArraySlice<[UInt8]>) -> [[UInt8]] {
        let n = leaves.count
        guard n > 1 else { return [] }
        let k = split(n)
        let lo = leaves.startIndex
        if m < k {
            return inclusionProof(m, leaves[lo..<(lo + k)]) + [root(leaves[(lo + k)...])]
        }
        return inclusionProof(m - k, leaves[(lo + k)...]) + [root(leaves[lo..<(lo + k)])]
    }

    /// Checks an audit path (RFC 9162 §2.1.3.2).
    public static func verifyInclusion(leaf: [UInt8], index: Int, size: Int, proof: [[UInt8]], root: [UInt8]) -> Bool {
        guard index >= 0, index < size else { return false }
        var fn = index, sn = size - 1
        var r = leaf
        for p in proof {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && r == root
    }
}

/// A signed tree head: what an auditor keeps outside the store (SPEC.md §8.1).
public struct TreeHead: Codable, Sendable, Equatable {
    public var version = 1
    public var tenant: String
    /// Records of the tenant covered (the tree's leaves, in position order).
    public var tree_size: Int
    /// The journal position of the last covered record (0 for an empty tree).
    public var last_position: UInt64
    public var root: String
    /// Ed25519 public key (32 bytes, hex) the head is signed with.
    public var public_key: String
    public var signature: String

    /// The signed bytes: "PSM-STH-v1" ‖ tenant length u16 BE ‖ tenant ‖ tree size u64 BE ‖ last position u64 BE ‖ root.
    public static func message(tenant: String, size: Int, lastPosition: UInt64, root: [UInt8]) -> [UInt8] {
        var m = Array("PSM-STH-v1".utf8)
        m.appendBE(UInt16(tenant.utf8.count))
        m += Array(tenant.utf8)
        m.appendBE(UInt64(size))
        m.appendBE(lastPosition)
        return m + root
    }

    public var signatureValid: Bool {
        guard let pk = hexDecode(public_key), let sig = hexDecode(signature), let r = hexDecode(root),
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: pk)
        else { return false }
        return key.isValidSignature(sig, for: Self.message(tenant: tenant, size: tree_size, lastPosition: last_position, root: r))
    }
}

/// Bytes from an even number of hexadecimal digits; nil otherwise.
public func hexDecode(_ s: String) -> [UInt8]? {
    guard s.count % 2 == 0 else { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(s.count / 2)
    var it = s.makeIterator()
    while let a = it.next(), let b = it.next() {
        guard let v = UInt8(String([a, b]), radix: 16) else { return nil }
        out.append(v)
    }
    return out
}

extension Journal {
    /// The leaf hashes of `tenant`'s records in position order, up to `through`, with each leaf's position.
    public func tenantLeaves(_ tenant: String, through: Position = .max) throws -> (leaves: [[UInt8]], positions: [Position]) {
        var tenantOf: [ID128: String] = [:]
        var leaves: [[UInt8]] = [], positions: [Position] = []
        try scan { e in
            if e.position > through { return false }
            let sid = e.header.streamID
            let t: String
            if let known = tenantOf[sid] { t = known } else {
                guard let info = try streamInfo(sid) else { throw JournalError.corruptIndex(position: e.position, "stream \(sid) has no entry") }
                t = info.stream.tenant
                tenantOf[sid] = t
            }
            if t == tenant {
                leaves.append(Merkle.leafHash(e.record))
                positions.append(e.position)
            }
            return true
        }
        return (leaves, positions)
    }

    /// Signs the current tree head of `tenant` with `key`.
    public func signTreeHead(tenant: String, key: Curve25519.Signing.PrivateKey) throws -> TreeHead {
        let (leaves, positions) = try tenantLeaves(tenant)
        return try TreeHead.sign(tenant: tenant, leaves: leaves, positions: positions, key: key)
    }

    /// Whether the journal still holds, unchanged, every record the head covers (its first `tree_size`
    /// leaves hash to its root) — i.e. the journal extends the head. Returns nil when it does, else why not.
    public func checkExtends(_ head: TreeHead, publicKey pinned: [UInt8]? = nil) throws -> String? {
        guard let early = head.precheck(pinned) else {
            let (leaves, positions) = try tenantLeaves(head.tenant)
            return head.extended(by: leaves, positions: positions)
        }
        return early
    }
}

extension TreeHead {
    /// The signed head of a tenant's tree over `leaves` (leaf hashes in tree order, each with its
    /// record's position), from any journal backend.
    public static func sign(tenant: String, leaves: [[UInt8]], positions: [Position], key: Curve25519.Signing.PrivateKey) throws -> TreeHead {
        let root = Merkle.root(leaves[...])
        let last = positions.last ?? 0
        let sig = try key.signature(for: TreeHead.message(tenant: tenant, size: leaves.count, lastPosition: last, root: root))
        return TreeHead(
            tenant: tenant, tree_size: leaves.count, last_position: last, root: hexBytes(root), public_key: hexBytes(Array(key.publicKey.rawRepresentation)),
            signature: hexBytes(Array(sig)))
    }

    /// What is wrong with the head on its own (version, signature, pinned key), or nil.
    public func precheck(_ pinned: [UInt8]?) -> String? {
        guard version == 1 else { return "tree head version \(version); this psm reads version 1" }
        guard signatureValid else { return "the tree head's signature does not verify" }
        if let pinned, hexDecode(public_key) != pinned { return "the tree head is signed by key \(public_key), not the pinned key \(hexBytes(pinned))" }
        return nil
    }

    /// Whether a tree over `leaves` extends this head: its first `tree_size` leaves hash to the head's
    /// root and the last of them is at the head's last position. nil when it does, else why not.
    public func extended(by leaves: [[UInt8]], positions: [Position]) -> String? {
        guard leaves.count >= tree_size else {
            return "tenant \(tenant) has \(leaves.count) records; the head covers \(tree_size) (records were removed)"
        }
        let root = Merkle.root(leaves[0..<tree_size])
        guard hexBytes(root) == self.root else {
            return "the first \(tree_size) records of tenant \(tenant) hash to \(hexBytes(root).prefix(16))…, the head says \(self.root.prefix(16))… (a record was altered, removed, inserted or reordered)"
        }
        let last = tree_size == 0 ? 0 : positions[tree_size - 1]
        guard last == last_position else { return "the head's last record is at position \(last_position), the journal's is at \(last)" }
        return nil
    }
}
