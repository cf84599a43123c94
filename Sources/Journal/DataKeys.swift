import Crypto
import Foundation

/// Per-stream data keys for payload encryption (SPEC.md §4.7), one small file each in the store's
/// `datakeys/` directory: `<stream id hex>-<key id 8 hex>.key` holding magic "PSMK", version 1, three
/// zero bytes, key id u32 BE, stream id (16), key (32) and CRC-32C (u32 LE) of the bytes before it.
///
/// Erasing a stream's keys makes its encrypted payloads unreadable for good (crypto-shredding): each
/// key file is overwritten with zeros, synced, unlinked, and the directory synced. Lookups check the
/// file still exists, so a key destroyed by another process is not served from this one's cache.
public final class DataKeys: @unchecked Sendable {
    public let directory: String
    private let lock = NSLock()
    private var cache: [KeyName: SymmetricKey] = [:]

    struct KeyName: Hashable { var stream: ID128; var keyID: UInt32 }

    public static let magic: [UInt8] = Array("PSMK".utf8)
    static let fileSize = 4 + 4 + 4 + 16 + 32 + 4

    public init(directory: String) { self.directory = directory }

    func path(_ stream: ID128, _ keyID: UInt32) -> String { directory + "/\(stream)-\(String(format: "%08x", keyID)).key" }

    /// The stream's current key id and key, created (durably, before it is used) when it has none.
    func current(for stream: ID128) throws -> (UInt32, SymmetricKey) {
        lock.lock()
        defer { lock.unlock() }
        if let k = cache[KeyName(stream: stream, keyID: 1)], FileManager.default.fileExists(atPath: path(stream, 1)) { return (1, k) }
        if let k = try load(stream, 1) { return (1, k) }
        let key = SymmetricKey(size: .bits256)
        try store(stream, 1, key)
        cache[KeyName(stream: stream, keyID: 1)] = key
        return (1, key)
    }

    /// The key `keyID` of `stream`, or nil when it does not exist (never made, or destroyed).
    public func key(_ stream: ID128, _ keyID: UInt32) throws -> SymmetricKey? {
        lock.lock()
        defer { lock.unlock() }
        let name = KeyName(stream: stream, keyID: keyID)
        if let k = cache[name] {
            if FileManager.default.fileExists(atPath: path(stream, keyID)) { return k }
            cache[name] = nil
            return nil
        }
        return try load(stream, keyID)
    }

    /// Whether the stream has a key file now.
    public func exists(_ stream: ID128) -> Bool { FileManager.default.fileExists(atPath: path(stream, 1)) }

    /// Destroys every key of `stream`: overwrite with zeros, fsync, unlink, fsync the directory.
    /// Returns how many key files were destroyed.
    @discardableResult
    public func destroy(_ stream: ID128) throws -> Int {
        lock.lock()
        defer { lock.unlock() }
        var n = 0
        let prefix = "\(stream)-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix(prefix) && name.hasSuffix(".key") {
            let p = directory + "/" + name
            let fd = open(p, O_WRONLY | O_CLOEXEC)
            if fd >= 0 {
                let zeros = [UInt8](repeating: 0, count: Self.fileSize)
                _ = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
                fsync(fd)
                close(fd)
            }
            guard unlink(p) == 0 || errno == ENOENT else {
                throw JournalError.invalidArgument("cannot remove data key \(p): \(String(cString: strerror(errno)))")
            }
            n += 1
        }
        cache = cache.filter { $0.key.stream != stream }
        syncDirectory()
        return n
    }

    /// Every key file's (stream, key id, key): for export.
    public func all() throws -> [(ID128, UInt32, [UInt8])] {
        lock.lock()
        defer { lock.unlock() }
        var out: [(ID128, UInt32, [UInt8])] = []
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted() where name.hasSuffix(".key") {
            let parts = name.dropLast(4).split(separator: "-")
            guard parts.count == 2, let stream = ID128(hex: String(parts[0])), let id = UInt32(parts[1], radix: 16) else { continue }
            if let k = try load(stream, id) { out.append((stream, id, k.withUnsafeBytes { Array($0) })) }
        }
        return out
    }

    /// Stores a key under exactly (stream, key id) (import); the same key again is accepted.
    public func install(_ stream: ID128, _ keyID: UInt32, _ bytes: [UInt8]) throws {
        guard bytes.count == 32, keyID != 0 else { throw JournalError.invalidArgument("a data key is 32 bytes with a nonzero id") }
        lock.lock()
        defer { lock.unlock() }
        if let existing = try load(stream, keyID) {
            guard existing.withUnsafeBytes({ Array($0) }) == bytes else { throw JournalError.invalidArgument("data key \(keyID) of stream \(stream) exists with other bytes") }
            return
        }
        try store(stream, keyID, SymmetricKey(data: bytes))
    }

    // MARK: Files

    private func load(_ stream: ID128, _ keyID: UInt32) throws -> SymmetricKey? {
        let p = path(stream, keyID)
        guard let data = FileManager.default.contents(atPath: p) else { return nil }
        let b = [UInt8](data)
        guard b.count == Self.fileSize, Array(b[0..<4]) == Self.magic, b[4] == 1, b[5...7].allSatisfy({ $0 == 0 }),
            b.be(8, UInt32.self) == keyID, ID128(bytes: Array(b[12..<28])) == stream,
            CRC32C.checksum(Array(b[0..<60])) == UInt32(b[60]) | UInt32(b[61]) << 8 | UInt32(b[62]) << 16 | UInt32(b[63]) << 24
        else { throw JournalError.invalidArgument("data key file \(p) is damaged (\(b.count) bytes)") }
        let key = SymmetricKey(data: b[28..<60])
        cache[KeyName(stream: stream, keyID: keyID)] = key
        return key
    }

    private func store(_ stream: ID128, _ keyID: UInt32, _ key: SymmetricKey) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var b = Self.magic + [1, 0, 0, 0]
        b.appendBE(keyID)
        b += stream.bytes
        key.withUnsafeBytes { b += $0 }
        b.appendLE(CRC32C.checksum(b))
        let p = path(stream, keyID), tmp = p + ".tmp"
        let fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw JournalError.invalidArgument("cannot create \(tmp): \(String(cString: strerror(errno)))") }
        let ok = b.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) == $0.count } && fsync(fd) == 0
        close(fd)
        guard ok, rename(tmp, p) == 0 else { throw JournalError.invalidArgument("cannot write data key \(p): \(String(cString: strerror(errno)))") }
        syncDirectory()
    }

    private func syncDirectory() {
        let fd = open(directory, O_RDONLY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    // MARK: Sealing

    /// Associated data binding a sealed payload to its record: "PSMJ-AD1" ‖ stream id ‖ event id ‖
    /// event type u16 BE ‖ event time i64 BE ‖ key id u32 BE.
    static func associatedData(stream: ID128, event: ID128, type: UInt16, time: Int64, keyID: UInt32) -> [UInt8] {
        var ad = Array("PSMJ-AD1".utf8)
        ad += stream.bytes
        ad += event.bytes
        ad.appendBE(type)
        ad.appendBE(UInt64(bitPattern: time))
        ad.appendBE(keyID)
        return ad
    }

    static func sealPayload(_ plain: ArraySlice<UInt8>, key: SymmetricKey, ad: [UInt8]) throws -> [UInt8] {
        let box = try ChaChaPoly.seal(plain, using: key, authenticating: ad)
        return Array(box.combined)
    }

    static func unseal(_ sealed: ArraySlice<UInt8>, key: SymmetricKey, ad: [UInt8]) throws -> [UInt8] {
        let box = try ChaChaPoly.SealedBox(combined: sealed)
        return Array(try ChaChaPoly.open(box, using: key, authenticating: ad))
    }
}

extension DataKeys {
    /// The streams that have a key file.
    public func streams() throws -> [ID128] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return Array(Set(names.compactMap { n -> ID128? in
            guard n.hasSuffix(".key"), let dash = n.firstIndex(of: "-") else { return nil }
            return ID128(hex: String(n[..<dash]))
        })).sorted { $0.description < $1.description }
    }
}
