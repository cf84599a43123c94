import Foundation
import LMDB

/// Sizes and counts of a journal (`psm journal stats`).
public struct JournalStats: Sendable, Codable {
    public var events: Int
    public var streams: Int
    public var lastPosition: Position
    public var dictionaries: Int
    public var activeDictionary: UInt32
    public var pageSize: Int
    public var usedPages: Int
    /// Bytes LMDB holds (used pages × page size); the file may be larger.
    public var usedBytes: Int
    public var fileBytes: Int
    public var mapSize: Int
    public var readersInUse: Int
    public var maxReaders: Int
    public var databases: [String: Int]
}

extension Journal {
    public func stats() throws -> JournalStats {
        let info = try env.info()
        let counts = try env.read { txn in
            (
                try txn.count(events), try txn.count(streams), try lastPosition(txn), try txn.count(dictionaries),
                [
                    Names.events: try txn.statistics(events).pages, Names.eventIDs: try txn.statistics(eventIDs).pages,
                    Names.streamRuns: try txn.statistics(streamRuns).pages,
                    Names.streams: try txn.statistics(streams).pages, Names.dictionaries: try txn.statistics(dictionaries).pages,
                ]
            )
        }
        var st = stat()
        let fileBytes = stat(directory + "/data.mdb", &st) == 0 ? Int(st.st_size) : 0
        return JournalStats(
            events: counts.0, streams: counts.1, lastPosition: counts.2, dictionaries: counts.3, activeDictionary: activeDictionaryID,
            pageSize: info.pageSize, usedPages: info.usedPages, usedBytes: info.usedPages * info.pageSize, fileBytes: fileBytes,
            mapSize: info.mapSize, readersInUse: info.readersInUse, maxReaders: info.maxReaders, databases: counts.4)
    }
}
