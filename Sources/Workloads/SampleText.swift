/// Seeded synthetic workloads for benchmarks, crash tests and fixtures: conversational text of the
/// kind PSM journals (~300 bytes per observation), generated from a seed so every run is identical.
/// No external data; nothing here is on the product path.

/// SplitMix64: a tiny, fast, seeded generator (Steele, Lea & Flood 2014).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

public struct SampleConversation: Sendable {
    var rng: SplitMix64

    public init(seed: UInt64) { rng = SplitMix64(seed: seed) }

    static let names = [
        "Maya", "Jonas", "Priya", "Tomasz", "Aiko", "Lucia", "Omar", "Grace", "Henrik", "Nadia", "Diego", "Chloe", "Kwame",
        "Ines", "Ravi", "Sofia", "Mateo", "Yuki", "Leila", "Felix", "Amara", "Bruno", "Elena", "Hamid",
    ]
    static let places = [
        "Lisbon", "the lake house", "Kyoto", "her sister's place in Leeds", "the climbing gym", "Montreal", "the farmers market",
        "the new office on 5th street", "Oaxaca", "the dentist", "Tallinn", "the community garden", "Nairobi", "the library downtown",
        "Porto", "his parents' farm", "the bakery around the corner", "Reykjavik", "the pottery studio", "Seoul",
    ]
    static let activities = [
        "training for a half marathon", "learning to make sourdough", "repainting the kitchen", "studying for the bar exam",
        "volunteering at the animal shelter", "planning a surprise party", "writing a fantasy novel", "taking salsa lessons",
        "fixing up an old motorbike", "looking for a new apartment", "teaching my nephew chess", "building a treehouse",
        "switching teams at work", "practising the cello again", "growing tomatoes on the balcony", "saving up for a sailboat",
    ]
    static let feelings = [
        "honestly a bit nervous", "really excited", "exhausted but happy", "pretty stressed", "weirdly calm", "so proud",
        "kind of overwhelmed", "relieved", "curious how it goes", "still undecided",
    ]
    static let foods = [
        "ramen", "a lemon tart", "vegan tacos", "grilled sardines", "mushroom risotto", "dumplings", "shakshuka", "pho",
        "a cheese board", "banana bread", "spicy lentil soup", "fish and chips",
    ]
    static let smallTalk = [
        "Ha, that's great to hear!", "Oh wow, tell me more.", "Sounds like a busy week.", "Lol same here.",
        "Anyway, how was your weekend?", "That reminds me of something.", "Good luck with that!", "Nice, I love that.",
        "Hmm, I'm not sure about that one.", "Totally understandable.",
    ]
    static let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]

    mutating func pick(_ a: [String]) -> String { a[Int(rng.next() % UInt64(a.count))] }
    mutating func number(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(rng.next() % UInt64(range.count)) }

    mutating func sentence() -> String {
        switch rng.next() % 12 {
        case 0: return "I've been \(pick(Self.activities)) since \(pick(Self.months)), and I'm \(pick(Self.feelings)) about it."
        case 1: return "\(pick(Self.names)) and I are going to \(pick(Self.places)) on the \(number(1...28))th of \(pick(Self.months))."
        case 2: return "My favourite thing to cook lately is \(pick(Self.foods)); I made it \(number(2...9)) times this month."
        case 3: return "Remember when \(pick(Self.names)) told us about \(pick(Self.places))? I finally went there last week."
        case 4: return "I switched my morning routine: up at \(number(5...8)):\(number(10...59)), run \(number(3...12)) km, then coffee."
        case 5: return "Work has been \(pick(Self.feelings)) — the \(pick(Self.months)) deadline moved up by \(number(2...6)) weeks."
        case 6: return "Actually, I don't like \(pick(Self.foods)) anymore, I think I overdid it."
        case 7: return "My \(["sister", "brother", "cousin", "neighbour", "manager", "best friend"][number(0...5)]) \(pick(Self.names)) just started \(pick(Self.activities))."
        case 8: return "We adopted a \(["cat", "dog", "rabbit", "parrot", "tortoise"][number(0...4)]) called \(pick(Self.names)); she is \(number(1...14)) years old."
        case 9: return "I'm allergic to \(["peanuts", "shellfish", "cats", "pollen", "penicillin"][number(0...4)]), so please keep that in mind for \(pick(Self.months))."
        case 10: return "Budget for the trip to \(pick(Self.places)) is about \(number(3...40))00 euros, flights included."
        default: return pick(Self.smallTalk)
        }
    }

    /// One observation of about `targetBytes` bytes of UTF-8 (never less than one sentence).
    public mutating func observation(targetBytes: Int = 300) -> String {
        var text = sentence()
        while text.utf8.count < targetBytes - 40 { text += " " + sentence() }
        return text
    }

    public mutating func speaker() -> String { pick(Self.names) }
}
