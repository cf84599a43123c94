import Foundation
import Journal

/// Event time on the wire: ISO 8601 UTC with microseconds, e.g. `2026-03-01T12:00:00.000000Z`.
public enum WireTime {
    /// Formats µs since the epoch.
    public static func format(_ micros: Int64) -> String {
        let seconds = Int64((Double(micros) / 1e6).rounded(.down))
        let fraction = micros - seconds * 1_000_000
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        let base = f.string(from: Date(timeIntervalSince1970: TimeInterval(seconds))).dropLast()  // drop "Z"
        let frac = String(fraction)
        return base + "." + String(repeating: "0", count: 6 - frac.count) + frac + "Z"
    }

    /// Parses ISO 8601 (with or without fractional seconds) into µs since the epoch; nil when it is not one.
    public static func parse(_ s: String) -> Int64? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        guard let d = f.date(from: s) ?? ISO8601DateFormatter().date(from: s) else { return nil }
        return Int64((d.timeIntervalSince1970 * 1_000_000).rounded())
    }

    /// Now, for callers that supply event time from the wall clock (the CLI and the servers; never a
    /// decision, which sees only the event time recorded in the journal).
    public static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1_000_000).rounded(.down)) }

    /// A memory, recall or event id from 32 hexadecimal digits (dashes allowed); nil otherwise.
    public static func id(_ s: String) -> ID128? {
        let hex = s.replacingOccurrences(of: "-", with: "")
        guard hex.count == 32 else { return nil }
        return ID128(hex: hex)
    }
}
