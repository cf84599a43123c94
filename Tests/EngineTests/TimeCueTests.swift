import Engine
import Foundation
import Projections
import Testing

/// Dates a query names (recall feature `time_match`, SPEC.md §12.7).
@Suite struct TimeCueTests {
    /// The UTC midnight of a civil date, in µs since the epoch.
    static func midnight(_ y: Int, _ m: Int, _ d: Int) -> Int64 {
        var c = DateComponents()
        c.year = y; c.month = m; c.day = d
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return Int64(calendar.date(from: c)!.timeIntervalSince1970) * 1_000_000
    }

    @Test func parsesTheDatesQuestionsName() {
        let cases: [(String, [TimeCue])] = [
            ("What dish did Nate make on 9 November, 2022?", [TimeCue(year: 2022, month: 11, day: 9)]),
            ("What book did Tim just finish reading on 8th December, 2023?", [TimeCue(year: 2023, month: 12, day: 8)]),
            ("Where was the forest picture shared by John on December 1,2023 taken?", [TimeCue(year: 2023, month: 12, day: 1)]),
            ("What instrument is Tim learning to play in December 2023?", [TimeCue(year: 2023, month: 12)]),
            ("When did John get an ankle injury in 2023?", [TimeCue(year: 2023)]),
            ("What kind of deal did John get in December?", [TimeCue(month: 12)]),
            ("What did Ana do in Sept?", [TimeCue(month: 9)]),
            ("Where was John between August 11 and August 15 2023?", [TimeCue(month: 8, day: 11), TimeCue(year: 2023, month: 8, day: 15)]),
            // "may" the verb, a lower-case month word, a day without a month: no dates.
            ("May I ask what Ana may do next?", []),
            ("Did they march in the parade?", []),
            ("What happened on the 4th?", []),
            ("How many apples did she buy?", []),
            // ... but a month word next to a day or a year counts in any case.
            ("what happened on may 5?", [TimeCue(month: 5, day: 5)]),
        ]
        for (query, expected) in cases {
            #expect(TimeCue.parse(query) == expected, "\(query): \(TimeCue.parse(query))")
        }
    }

    @Test func matchesTheUTCDate() {
        let cue = TimeCue(year: 2022, month: 11, day: 9)
        let day = Self.midnight(2022, 11, 9)
        #expect(cue.matches(day) && cue.matches(day + 86_400_000_000 - 1))
        #expect(!cue.matches(day - 1) && !cue.matches(day + 86_400_000_000))
        #expect(TimeCue(month: 11).matches(Self.midnight(2019, 11, 30)) && !TimeCue(month: 11).matches(Self.midnight(2019, 12, 1)))
        #expect(TimeCue(year: 2023).matches(Self.midnight(2023, 1, 1)) && !TimeCue(year: 2023).matches(Self.midnight(2022, 12, 31)))
        #expect(cue.description == "9 November 2022")
    }
}
