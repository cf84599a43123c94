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
        try prepareAll([e])[0]
    }

    /// Events per thread below which a batch is compressed on the caller's thread alone.
    static let eventsPerThread = 256

    /// ``prepare(_:)`` for every event, in order. A large batch is split into contiguous parts
    /// compressed on up to `threads` threads (at least ``eventsPerThread`` events each). Each payload is
    /// compressed on its own with the same level and dictionary, so the output is the same bytes
    /// whatever the split (SPEC.md §4.4). The first error in event order is thrown.
    func prepareAll(_ events: [EventData], threads: Int = 1) throws(JournalError) -> [PreparedEvent] {
        let parts = max(1, min(threads, events.count / CodecPool.eventsPerThread))
        if parts == 1 { return try prepare(events[...]) }
        let results = PartResults(count: parts)
        let size = (events.count + parts - 1) / parts
        DispatchQueue.concurrentPerform(iterations: parts) { i in
            let range = (i * size)..<min(events.count, (i + 1) * size)
            results.set(i, Result { () throws(JournalError) in try prepare(events[range]) })
        }
        var out: [PreparedEvent] = []
        out.reserveCapacity(events.count)
        for r in results.take() { out.append(contentsOf: try r.get()) }
        return out
    }

    /// Compresses `events` in order with one borrowed compressor.
    private func prepare(_ events: ArraySlice<EventData>) throws(JournalError) -> [PreparedEvent] {
        lock.lock()
        let id = activeID
        let dict = activeBytes
        var compressor: Zstd.Compressor?
        if let i = compressors.lastIndex(where: { $0.0 == id }) { compressor = compressors.remove(at: i).1 }
        lock.unlock()
        var out: [PreparedEvent] = []
        out.reserveCapacity(events.count)
        defer {
            if let compressor {
                lock.lock()
                if id == activeID { compressors.append((id, compressor)) }
                lock.unlock()
            }
        }
        // Every compressed payload of the part goes into one buffer, and each event keeps a slice of
        // it: one allocation per part instead of one per event, freed as one by the writer thread (a
        // free per event from another thread contended for malloc's arena lock).
        var capacity = 0
        for e in events where e.payload.count >= RecordFormat.compressionThreshold { capacity += Zstd.Compressor.bound(e.payload.count) }
        var buffer = [UInt8]()
        var sizes: [Int] = []
        if capacity > 0 {
            if compressor == nil {
                do { compressor = try Zstd.Compressor(level: level, dictionary: dict) } catch { throw .invalidArgument("\(error)") }
            }
            let c = compressor!
            sizes.reserveCapacity(events.count)
            var failure: JournalError?
            buffer = [UInt8](unsafeUninitializedCapacity: capacity) { o, count in
                var used = 0
                for e in events where e.payload.count >= RecordFormat.compressionThreshold {
                    do {
                        let n = try e.payload.withUnsafeBytes { try c.compress($0, into: UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(o)[used...])) }
                        sizes.append(n)
                        used += n
                    } catch {
                        failure = .invalidArgument("event \(e.id): \(error)")
                        break
                    }
                }
                count = used
            }
            if let failure { throw failure }
        }
        var next = 0, offset = 0
        for e in events {
            // The length is noted here, while the payload is in cache: the writer thread then never
            // touches the payload itself.
            let length = UInt32(e.payload.count)
            guard e.payload.count >= RecordFormat.compressionThreshold else {
                out.append(PreparedEvent(data: e, flags: 0, dictionaryID: 0, stored: e.payload[...], uncompressedLength: length))
                continue
            }
            let n = sizes[next]
            next += 1
            if n >= e.payload.count {
                out.append(PreparedEvent(data: e, flags: 0, dictionaryID: 0, stored: e.payload[...], uncompressedLength: length))
            } else {
                out.append(PreparedEvent(data: e, flags: RecordFormat.flagZstd, dictionaryID: id, stored: buffer[offset..<(offset + n)], uncompressedLength: length))
            }
            offset += n
        }
        return out
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

/// One result slot per part of a parallel batch.
private final class PartResults: @unchecked Sendable {
    private let lock = NSLock()
    private var slots: [Result<[PreparedEvent], JournalError>?]
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<[PreparedEvent], JournalError>) {
        lock.lock(); slots[i] = r; lock.unlock()
    }
    func take() -> [Result<[PreparedEvent], JournalError>] {
        lock.lock(); defer { lock.unlock() }
        return slots.map { $0! }
    }
}
