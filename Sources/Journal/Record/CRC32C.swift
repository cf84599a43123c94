import CKernels

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI, ext4 and LevelDB's log.
/// ``checksum(_:continuing:)`` uses the CPU's CRC32 instruction when it has one (CKernels, chosen at
/// run time); ``reference(_:continuing:)`` is a slicing-by-8 table in Swift that the tests compare it
/// with. Test vectors from RFC 3720 §B.4 are in the tests.
public enum CRC32C {
    static let tables: [[UInt32]] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            var c = t[0][i]
            for k in 1..<8 {
                c = t[0][Int(c & 0xFF)] ^ (c >> 8)
                t[k][i] = c
            }
        }
        return t
    }()
    static let flat: [UInt32] = tables.flatMap { $0 }

    /// CRC-32C of `bytes`, continuing from `crc` (pass the previous result to checksum in pieces).
    @inline(__always)
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        psm_crc32c(crc, bytes.baseAddress, bytes.count)
    }

    /// Whether ``checksum(_:continuing:)`` runs on the CPU's CRC32 instruction.
    public static var usesHardware: Bool { psm_crc32c_uses_hardware() != 0 }

    /// The same function as ``checksum(_:continuing:)``, computed with a slicing-by-8 table in Swift.
    public static func reference(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var c = ~crc
        guard var p = bytes.baseAddress else { return crc }
        var n = bytes.count
        flat.withUnsafeBufferPointer { t in
            while n >= 8 {
                let lo = p.loadUnaligned(as: UInt32.self).littleEndian ^ c
                let hi = (p + 4).loadUnaligned(as: UInt32.self).littleEndian
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                p += 8
                n -= 8
            }
            while n > 0 {
                c = t[Int((c ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                p += 1
                n -= 1
            }
        }
        return ~c
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }
}
