import Projections

/// A calendar date a query names — "on 9 November, 2022", "in May 2023", "in 2023", "in December" — and
/// whether a memory's time falls on it (recall feature `time_match`, SPEC.md §12.7). Only absolute dates:
/// "last week" in a question usually means a week before the conversation it asks about, not before the
/// question, so relative cues are left to the words the index holds.
public struct TimeCue: Sendable, Equatable, CustomStringConvertible {
    /// Parts the query named; nil parts match any value.
    public var year: Int?
    public var month: Int?
    public var day: Int?

    public init(year: Int? = nil, month: Int? = nil, day: Int? = nil) {
        self.year = year; self.month = month; self.day = day
    }

    public var description: String {
        [day.map(String.init), month.map { Fold.monthNames[$0 - 1] }, year.map(String.init)].compactMap { $0 }.joined(separator: " ")
    }

    /// Whether the UTC calendar date of `time` (µs since the epoch) agrees with every part the cue names.
    public func matches(_ time: Int64) -> Bool {
        let d = Fold.civilDate(time)
        return (year ?? d.year) == d.year && (month ?? d.month) == d.month && (day ?? d.day) == d.day
    }

    /// Month words: full English names and their common abbreviations ("Sept" too). "Mar" is left out
    /// (a verb far more often than a month in a question).
    static let months: [String: Int] = {
        var m: [String: Int] = [:]
        for (i, name) in Fold.monthNames.enumerated() {
            m[name.lowercased()] = i + 1
            if name.count > 3, name != "March" { m[String(name.prefix(3)).lowercased()] = i + 1 }
        }
        m["sept"] = 9
        return m
    }()

    /// The cues of `query`: those with a month in the order they appear, then lone years. A month word
    /// counts when it is capitalised and not the query's first word ("May" the month, not "may" the verb),
    /// or when a day or a year stands next to it. A day is a number 1-31 (with st/nd/rd/th or not) right
    /// before or after the month; a year is a number 1900-2199, joined to the month before it when at most
    /// two words lie between, else a cue of its own. A query without such words has no cues.
    public static func parse(_ query: String) -> [TimeCue] {
        var words: [Substring] = []
        var start: String.Index? = nil
        for i in query.indices {
            if query[i].isLetter || query[i].isNumber {
                if start == nil { start = i }
            } else if let s = start {
                words.append(query[s..<i])
                start = nil
            }
        }
        if let s = start { words.append(query[s...]) }

        func number(_ w: Substring) -> Int? {
            guard w.count <= 4, w.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            return Int(w)
        }
        func day(_ i: Int) -> Int? {
            guard words.indices.contains(i) else { return nil }
            var w = words[i].lowercased()[...]
            for suffix in ["st", "nd", "rd", "th"] where w.hasSuffix(suffix) { w = w.dropLast(2); break }
            guard w.count <= 2, let n = number(w), (1...31).contains(n) else { return nil }
            return n
        }
        func year(_ i: Int) -> Int? {
            guard words.indices.contains(i), words[i].count == 4, let n = number(words[i]), (1900...2199).contains(n) else { return nil }
            return n
        }

        var cues: [TimeCue] = []
        var usedYears = Set<Int>()
        for (i, w) in words.enumerated() {
            guard let month = months[w.lowercased()] else { continue }
            let d = day(i - 1) ?? day(i + 1)
            let yearIndex = (i + 1...i + 3).first { year($0) != nil }
            let capitalised = w.first?.isUppercase == true && i > 0
            guard capitalised || d != nil || yearIndex != nil else { continue }
            if let y = yearIndex { usedYears.insert(y) }
            cues.append(TimeCue(year: yearIndex.flatMap(year), month: month, day: d))
        }
        for i in words.indices where !usedYears.contains(i) {
            if let y = year(i) { cues.append(TimeCue(year: y)) }
        }
        return cues
    }
}
