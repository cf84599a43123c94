import Foundation

/// Compressors and decompressors shared by the threads that append and read. zstd contexts are not
/// thread-safe, so each call borrows one from a free list and returns it.
final class CodecPool: @unchecked Sendable {
    private let lock = NSLock()
    private let level: Int32
    private(set) var activeID: UInt32 = 0
    private var activeBytes: [UInt8]?
    private var compressors: [(UInt32, Zstd.Compressor)] = []
    private var decompressors: [UInt32: [Zstd.Decompressor]] = [:]

    init(level: Int32) { self.level = level }

    func setActive(id: UInt32, bytes: [UInt8]) {
        lock.lock(); defer { lock.unlock() }
        activeID = id
        activeBytes = bytes
        compressors.removeAll()
    }

    /// Compresses the payload when it is at least ``RecordFormat/compressionThreshold`` bytes and
    /// compression makes it smaller; otherwise stores it as is.
    func prepare(_ e: EventData) throws(JournalError) -> PreparedEvent {
        guard e.payload.count >= RecordFormat.compressionThreshold else {
            return PreparedEvent(data: e, flags: 0, dictionaryID: 0, stored: e.payload)
        }
        lock.lock()
        let id = activeID
        let dict = activeBytes
        var borrowed: Zstd.Compressor?
        if let i = compressors.lastIndex(where: { $0.0 == id }) { borrowed = compressors.remove(at: i).1 }
        lock.unlock()
        do {
            let c = try borrowed ?? Zstd.Compressor(level: level, dictionary: dict)
            let stored = try e.payload.withUnsafeBytes { try c.compress($0) }
            lock.lock()
            if id == activeID { compressors.append((id, c)) }
            lock.unlock()
            if stored.count >= e.payload.count {
                return PreparedEvent(data: e, flags: 0, dictionaryID: 0, stored: e.payload)
            }
            return PreparedEvent(data: e, flags: RecordFormat.flagZstd, dictionaryID: id, stored: stored)
        } catch {
            throw .invalidArgument("event \(e.id): \(error)")
        }
    }

    func decompress(_ stored: ArraySlice<UInt8>, size: Int, dictionaryID: UInt32, dictionary: [UInt8]?) throws -> [UInt8] {
        lock.lock()
        let borrowed = decompressors[dictionaryID]?.popLast()
        lock.unlock()
        let d = try borrowed ?? Zstd.Decompressor(dictionary: dictionary)
        defer {
            lock.lock()
            decompressors[dictionaryID, default: []].append(d)
            lock.unlock()
        }
        return try stored.withUnsafeBytes { try d.decompress($0, size: size) }
    }
}
