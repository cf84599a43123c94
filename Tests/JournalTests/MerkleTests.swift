import Crypto
import Foundation
import Journal
import Testing

/// Tamper evidence: per-tenant Merkle trees (RFC 6962) and signed tree heads.
@Suite struct MerkleTests {
    /// The eight-leaf test vector used by Certificate Transparency implementations.
    static let leaves: [[UInt8]] = [
        [], [0x00], [0x10], [0x20, 0x21], [0x30, 0x31], [0x40, 0x41, 0x42, 0x43], [0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        [0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f],
    ]
    static let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4", "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c", "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    @Test func rootsMatchTheRFC6962TestVector() {
        let hashes = Self.leaves.map(Merkle.leafHash)
        for n in 1...8 { #expect(hexBytes(Merkle.root(hashes[0..<n])) == Self.roots[n - 1], "size \(n)") }
        #expect(hexBytes(Merkle.root([[UInt8]]()[...])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func everyInclusionProofVerifiesAndAlteredOnesDoNot() {
        for n in 1...33 {
            let hashes = (0..<n).map { Merkle.leafHash([UInt8(truncatingIfNeeded: $0), 7]) }
            let root = Merkle.root(hashes[...])
            for m in 0..<n {
                let proof = Merkle.inclusionProof(m, hashes[...])
                #expect(Merkle.verifyInclusion(leaf: hashes[m], index: m, size: n, proof: proof, root: root), "n \(n) m \(m)")
                if n > 1 {
                    #expect(!Merkle.verifyInclusion(leaf: hashes[(m + 1) % n], index: m, size: n, proof: proof, root: root))
                    var bad = proof
                    bad[0][0] ^= 1
                    #expect(!Merkle.verifyInclusion(leaf: hashes[m], index: m, size: n, proof: bad, root: root))
                }
            }
        }
    }

    enum Change { case none, alter(Int), delete(Int), swap(Int), truncate(Int), extend, otherTenant }

    /// Tenant t1's 24 events over 3 streams, interleaved with tenant t2's, written through the API — so a
    /// rewritten history is internally consistent (CRCs, chains, indexes) and only a head can tell.
    func build(_ dir: TempDir, _ change: Change) throws -> Journal {
        let j = try Journal(directory: dir.path)
        var a = (0..<24).map { i in (stream("s\(i % 3)"), event(UInt64(i + 1), text: "entry \(i) of tenant one")) }
        switch change {
        case .alter(let i): a[i].1 = event(UInt64(i + 1), text: "entry \(i) of tenant one, quietly changed")
        case .delete(let i): a.remove(at: i)
        case .swap(let i): a.swapAt(i, i + 3)  // same stream, so revisions stay consistent
        case .truncate(let k): a.removeLast(k)
        default: break
        }
        for (i, (s, e)) in a.enumerated() {
            _ = try j.appendBlocking([AppendRequest(stream: s, events: [e])])
            let text = change.isOtherTenant && i == 5 ? "other tenant, changed" : "other tenant \(i)"
            _ = try j.appendBlocking([AppendRequest(stream: stream("x", tenant: "t2"), events: [event(UInt64(1000 + i), text: text)])])
        }
        if case .extend = change {
            for i in 0..<5 { _ = try j.appendBlocking([AppendRequest(stream: stream("s9"), events: [event(UInt64(500 + i), text: "later \(i)")])]) }
        }
        return j
    }

    @Test func aSignedHeadDetectsEveryRewriteOfTheTenantsHistory() throws {
        let key = Curve25519.Signing.PrivateKey()
        let original = TempDir()
        defer { original.remove() }
        let j0 = try build(original, .none)
        let head = try j0.signTreeHead(tenant: "t1", key: key)
        j0.close()
        #expect(head.tree_size == 24 && head.signatureValid)

        for (change, detected) in [(Change.none, false), (.extend, false), (.otherTenant, false), (.alter(7), true), (.delete(10), true), (.swap(4), true), (.truncate(2), true)] {
            let dir = TempDir()
            defer { dir.remove() }
            let j = try build(dir, change)
            defer { j.close() }
            #expect(try j.verify().ok, "\(change): the rewrite is consistent, so plain verify passes")
            let problem = try j.checkExtends(head, publicKey: Array(key.publicKey.rawRepresentation))
            #expect((problem != nil) == detected, "\(change): \(problem ?? "accepted")")
        }

        // A head whose root or size was edited no longer verifies; a head from another key is refused when pinned.
        var forged = head
        forged.tree_size = 23
        #expect(!forged.signatureValid)
        let j = try Journal(directory: original.path)
        defer { j.close() }
        #expect(try j.checkExtends(forged)?.contains("signature") == true)
        let other = try j.signTreeHead(tenant: "t1", key: Curve25519.Signing.PrivateKey())
        #expect(try j.checkExtends(other) == nil)
        #expect(try j.checkExtends(other, publicKey: Array(key.publicKey.rawRepresentation))?.contains("pinned") == true)
    }
}

extension MerkleTests.Change {
    var isOtherTenant: Bool { if case .otherTenant = self { return true } else { return false } }
}
