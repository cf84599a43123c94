import Foundation
import Projections
import Workloads

/// The project's own training curriculum (SPEC.md §12.7): seeded multi-session conversations between
/// two personas, with facts worth remembering among small talk, preferences, plans and events with
/// dates, updates over time, and later questions whose evidence turns are known. No external data.
public struct Curriculum: Sendable {
    public struct Turn: Sendable, Codable, Equatable {
        public var id: String
        public var speaker: String
        public var text: String
        /// For a fact statement: its kind (pet, job, city, …); nil for small talk.
        public var fact: String? = nil
        /// For an update: the turn whose value it replaces.
        public var replaces: String? = nil
        /// For a repeat: the earlier turn that stated the same fact (same speaker, kind and value), which
        /// sleep should consolidate it with.
        public var repeats: String? = nil
        /// For an emotional disclosure (recipe 14, fact kind `life`): true; what the emotion head learns.
        public var emotional: Bool? = nil
        /// For a refinement: the statement whose fact it adds a detail to (same speaker and kind, the value
        /// unchanged), which the interference head learns to link rather than supersede.
        public var refines: String? = nil
    }
    public struct Session: Sendable, Codable, Equatable {
        public var index: Int
        /// Event time of the session's first turn (µs).
        public var time: Int64
        public var turns: [Turn]
    }
    public struct Question: Sendable, Codable, Equatable {
        public var text: String
        public var evidence: [String]
        public var kind: String
    }
    public struct Conversation: Sendable, Codable, Equatable {
        public var id: String
        public var speakers: [String]
        public var sessions: [Session]
        public var questions: [Question]
    }

    public let conversations: [Conversation]

    /// `count` conversations from `seed`. The same arguments always give the same conversations. With
    /// `repeats`, a fact already stated is, half the time it comes up again, repeated in other words
    /// (the episodes sleep should consolidate) instead of updated; the consolidation head trains on that
    /// variant. With `echoes` (recipe 9) the other speaker often reacts to a fact by repeating its value,
    /// and some small talk is chatter about a fact's topic; without them (and without repeats) the
    /// conversations are exactly those of recipes 7 and 8. With `timeCues` (recipe 13) a quarter of the
    /// questions name the date their evidence was said ("… on 9 March, 2023?"), drawn from a generator of
    /// their own, so the turns and the other questions are the same as without.
    /// With `emotions` (recipe 14) about one small-talk turn in twelve is an emotional disclosure instead
    /// ("My grandmother passed away last week. I'm heartbroken."), a `life` fact marked `emotional`, chosen
    /// by a generator of its own, so every other turn and every question is the same as without.
    /// With `refinements` about one small-talk turn in six, when its speaker has stated a fact that has
    /// details to add, adds one instead ("Our beagle Theo turned out to be terrified of the vacuum."): a
    /// turn of that fact's kind whose `refines` names the statement, drawn from a generator of its own.
    /// The questions do not change; the interference head learns from this variant (SPEC.md §12.7).
    /// With `typed` (recipe 17) a quarter of the small-talk turns that still state nothing after the options
    /// above (warm ones included) are a typed statement instead (``Generator/typedStatements``: a liking, an intention, a happening or a standing fact,
    /// each in many phrasings), drawn from a generator of its own; the type head learns from this variant.
    public init(
        seed: UInt64, count: Int, sessions: ClosedRange<Int> = 5...9, repeats: Bool = false, echoes: Bool = true, timeCues: Bool = false,
        emotions: Bool = false, warmth: Bool = false, refinements: Bool = false, typed: Bool = false
    ) {
        var rng = SplitMix64(seed: seed)
        var out: [Conversation] = []
        for i in 0..<count {
            let conversationSeed = rng.next()
            var g = Generator(
                rng: SplitMix64(seed: conversationSeed), id: "cur-\(seed)-\(i)", sessionCount: sessions, repeats: repeats, echoes: echoes,
                cues: timeCues ? SplitMix64(seed: conversationSeed ^ 0x7469_6d65_6375_6573) : nil,
                disclosures: emotions ? SplitMix64(seed: conversationSeed ^ 0x656d_6f74_696f_6e73) : nil,
                warm: warmth ? SplitMix64(seed: conversationSeed ^ 0x7761_726d_7468_2121) : nil,
                details: refinements ? SplitMix64(seed: conversationSeed ^ 0x7265_6669_6e65_7321) : nil,
                typing: typed ? SplitMix64(seed: conversationSeed ^ 0x7479_7065_6474_7874) : nil)
            out.append(g.conversation())
        }
        conversations = out
    }

    /// The warm small talk of recipe 15 (``Curriculum/init(seed:count:sessions:repeats:echoes:timeCues:emotions:warmth:)``).
    public static var warmTexts: [String] { Generator.warmTexts }

    /// A digest of the curriculum's content (recorded in the training manifest).
    public var digest: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(conversations)) ?? Data()
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in data { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return String(h, radix: 16)
    }
}

/// One conversation's worth of seeded choices.
struct Generator {
    var rng: SplitMix64
    let id: String
    let sessionCount: ClosedRange<Int>
    var repeats = false
    var echoes = true
    /// The time cues' own choices (nil: questions name no dates).
    var cues: SplitMix64? = nil
    /// The emotional disclosures' own choices (nil: none).
    var disclosures: SplitMix64? = nil
    /// The warm small talk's own choices (nil: none).
    var warm: SplitMix64? = nil
    /// The refinements' own choices (nil: none).
    var details: SplitMix64? = nil
    /// The typed statements' own choices (nil: none).
    var typing: SplitMix64? = nil

    /// The share of small-talk turns that add a detail to a fact their speaker stated (with refinements on).
    static let refinementChance = 1.0 / 6
    /// Details added to a stated fact (`{v}` its value, `{x}` its extra): the value stays, the fact grows.
    static let refinementTexts: [String: [String]] = [
        "pet": ["{x} has already learned to sit, such a smart {v}.", "Our {v} {x} turned out to be terrified of the vacuum cleaner.",
                "The vet said {x} is perfectly healthy, just a little chubby.", "{x} sleeps on my feet every night now, that {v} is so clingy."],
        "job": ["As a {v} I now lead a small team of four.", "My shifts as a {v} moved to nights, which is rough.",
                "The best part of being a {v} is the people I work with.", "I'm taking a certification course to move up as a {v}."],
        "city": ["We found a tiny apartment in {v} near the central park.", "The public transport in {v} is so good I sold my car.",
                 "Our neighborhood in {v} has the best bakery I've ever been to.", "Winters in {v} are harsher than I expected."],
        "hobby": ["I joined a {v} group that meets every Thursday evening.", "My {v} is finally getting better, my teacher says I'm a natural.",
                  "I bought proper gear for {v}, no more borrowing.", "I've been doing {v} three times a week, it's become a routine."],
        "allergy": ["The {v} allergy is worse than I thought, I carry an EpiPen now.", "Turns out even traces of {v} set me off.",
                    "My doctor gave me new pills for the {v} allergy, they help a lot."],
        "sibling": ["{x} is two years older than me, by the way.", "My {v} {x} lives just across town, we see each other every week.",
                    "{x} and I shared a room growing up, we fought all the time.", "My {v} {x} is the funniest person in our family."],
        "food": ["The best {v} I ever had was at a tiny place downtown.", "I learned to make {v} from scratch last weekend.",
                 "When I make {v} I always add extra chili."],
        "plan": ["For the {v} trip we're renting a camper van.", "We'll spend two whole weeks in {v}, mostly hiking.",
                 "I found a really cheap flight for the {v} trip."],
        "event": ["At the {v} I ran into an old classmate.", "The {v} raised money for the children's hospital.",
                  "I still have photos from the {v}, I'll send you some."],
    ]

    /// A detail added to one of `who`'s stated facts in place of the small talk just said, a sixth of
    /// the time (with refinements on; `known` maps "speaker|kind" to value, extra and statement turn).
    mutating func refine(_ turns: inout [Curriculum.Turn], who: String, known: [String: (String, String, String, String)]) {
        guard var r = details, !turns.isEmpty else { return }
        defer { details = r }
        guard r.chance(Self.refinementChance), turns[turns.count - 1].fact == nil else { return }
        let facts = known.keys.sorted().filter { $0.hasPrefix(who + "|") && Self.refinementTexts[String($0.dropFirst(who.count + 1))] != nil }
        guard !facts.isEmpty else { return }
        let key = r.pick(facts), kind = String(key.dropFirst(who.count + 1))
        guard let (value, extra, turn, _) = known[key], let texts = Self.refinementTexts[kind] else { return }
        var text = r.pick(texts).replacingOccurrences(of: "{v}", with: value).replacingOccurrences(of: "{x}", with: extra)
        if let f = text.first, f.isLowercase { text = f.uppercased() + text.dropFirst() }
        turns[turns.count - 1].text = text
        turns[turns.count - 1].fact = kind
        turns[turns.count - 1].refines = turn
    }

    /// The share of small-talk turns said warmly instead (with warmth on), and how: thanks, support,
    /// encouragement, greetings and goodbyes as friends write them, longer than the short small talk and
    /// about nothing to remember. A fifth of them open with the other speaker's name (`{n}`).
    static let warmChance = 0.25
    static let warmTexts = [
        "Thanks so much, your support really means the world to me!", "I'm always here for you, you know that. Reach out anytime.",
        "You've worked so hard for this, I'm so proud of you!", "That's awesome, keep going, you're doing amazing!",
        "Aww thank you, you always know what to say to cheer me up.", "Don't give up, I believe in you one hundred percent!",
        "Glad I could help! Always happy to cheer you on.", "Thanks, I really appreciate you listening. It helps a lot.",
        "You're such an inspiration, seriously. Keep it up!", "Sending you lots of love and good vibes, you've got this!",
        "Bye! Take care and talk to you soon!", "Thanks, see you later!", "Totally, that makes sense! Catch you later!",
        "Hey! Long time no see, what's been going on with you?", "It's so nice to hear from you! How's everything been?",
        "That's so kind of you to say, thank you!", "I'm really happy for you, you deserve every bit of it.",
        "Wow, that's incredible! Congrats, you should be proud!", "Having friends like you makes everything easier, thank you.",
        "I know you'll figure it out, you always do!", "Your kindness is contagious, thanks for always lifting me up.",
        "Keep shining and doing what you love, it really shows!", "Thanks for the encouragement, I'll keep pushing forward.",
        "Good luck, I'm rooting for you all the way!",
    ]

    /// The small talk just said, said warmly instead, a quarter of the time (with warmth on).
    mutating func warmly(_ turns: inout [Curriculum.Turn], to other: String) {
        guard var r = warm, !turns.isEmpty, turns[turns.count - 1].fact == nil else { return }
        defer { warm = r }
        guard r.chance(Self.warmChance) else { return }
        var text = r.pick(Self.warmTexts)
        if r.next() % 5 == 0 { text = "\(other), " + text.prefix(1).lowercased() + text.dropFirst() }
        turns[turns.count - 1].text = text
    }

    /// The share of small-talk turns that become an emotional disclosure (with disclosures on).
    static let disclosureChance = 1.0 / 12
    /// Strongly felt things people tell each other, bad and good (`{x}` = a name): the curriculum's
    /// emotional turns. Everything else — facts, reactions, small talk — is not emotional.
    static let disclosureTexts = [
        "My grandmother passed away last week. I'm heartbroken.", "We had to put our dog {x} down yesterday, I can't stop crying.",
        "I was in a car accident on Monday. I'm okay, but I'm still shaking.", "My dad was just diagnosed with cancer and I'm terrified.",
        "I got laid off this morning and I'm panicking about rent.", "{x} and I broke up after six years. I feel completely lost.",
        "Our house flooded last night and we lost almost everything.", "My best friend {x} stopped talking to me and it really hurts.",
        "I spent the night in the hospital with my son after he fell off his bike. Scariest night of my life.",
        "I had a panic attack at work today, I've never felt so scared.", "My mom is in intensive care. I'm so scared of losing her.",
        "Someone broke into our apartment while we were away. I don't feel safe anymore.",
        "I got engaged last night, I'm still shaking with happiness!", "We're having a baby! I just found out and I'm over the moon.",
        "I finally got the promotion I've worked years for, I cried in the car!", "My daughter {x} was born on Tuesday, I've never felt love like this.",
        "I passed my bar exam! I screamed so loud the neighbors came over.", "After two years of chemo, I'm officially cancer free!",
        "I won the regional chess tournament, it's the proudest moment of my life!", "My brother {x} came home from deployment today, we all burst into tears.",
        "We closed on our first house today, I can't believe it's real!", "I got into my dream university, I'm literally jumping around the room!",
        "{x} proposed to me on the beach at sunset and I said yes!", "I ran my first marathon for my late father and crossed the line in tears.",
    ]

    /// An emotional disclosure in place of the small talk just said, a twelfth of the time (with disclosures on).
    mutating func disclose(_ turns: inout [Curriculum.Turn]) {
        guard var r = disclosures, !turns.isEmpty else { return }
        defer { disclosures = r }
        guard r.chance(Self.disclosureChance) else { return }
        let text = r.pick(Self.disclosureTexts), name = r.pick(Self.firstNames)
        turns[turns.count - 1].text = text.replacingOccurrences(of: "{x}", with: name)
        turns[turns.count - 1].fact = "life"
        turns[turns.count - 1].emotional = true
    }

    /// The share of questions that name their evidence's date, and how they name it (`{d}` day, `{m}`
    /// month, `{y}` year), inserted before the question mark.
    static let cueChance = 0.25
    static let cueForms = [" on {d} {m}, {y}", " in {m} {y}", ", as mentioned on {m} {d}, {y}", " on {d} {m} {y}", " in {m}"]

    /// `question` naming the date of `time` in one of ``cueForms``, a quarter of the time (with cues on).
    mutating func cued(_ question: String, _ time: Int64) -> String {
        guard var r = cues else { return question }
        defer { cues = r }
        guard r.chance(Self.cueChance) else { return question }
        let form = r.pick(Self.cueForms)
        let d = Fold.civilDate(time)
        let cue = form.replacingOccurrences(of: "{d}", with: "\(d.day)").replacingOccurrences(of: "{m}", with: Fold.monthNames[d.month - 1])
            .replacingOccurrences(of: "{y}", with: "\(d.year)")
        let body = question.hasSuffix("?") ? String(question.dropLast()) : question
        return body + cue + "?"
    }

    mutating func pick<T>(_ a: [T]) -> T { rng.pick(a) }
    mutating func chance(_ p: Double) -> Bool { rng.chance(p) }
    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(rng.next() % UInt64(r.count)) }

    static let firstNames = [
        "Aria", "Bastian", "Carmen", "Dmitri", "Elif", "Farid", "Greta", "Hugo", "Ingrid", "Jamal", "Keiko", "Liam", "Marisol", "Nikolai",
        "Odette", "Pavel", "Quinn", "Rosa", "Sven", "Tamsin", "Umar", "Vera", "Wes", "Ximena", "Yusuf", "Zara", "Noor", "Theo", "Lena", "Matteo",
    ]

    /// One fact kind: how it is said (several phrasings, `{v}` = value, `{x}` = extra, `{m}` = month), asked,
    /// and its values. Each statement and update comes with an echo question in its own words, asked the
    /// way a person who read the conversation asks (`{p}` = the speaker); `questions` are paraphrases.
    struct FactKind {
        var key: String
        var statements: [(String, String)]
        var updates: [(String, String)]
        var questions: [String]
        var values: [String]
    }

    static let facts: [FactKind] = [
        FactKind(
            key: "pet", statements: [("We just adopted a {v} named {x}!", "What is the name of the {v} {p} just adopted?"), ("Meet {x}, our new {v}, it has taken over the sofa.", "Which new pet has taken over {p}'s sofa?"), ("My {v} {x} kept me up all night again.", "Which pet kept {p} up all night?"), ("I finally got a {v}; I called it {x}.", "What did {p} call the {v} they finally got?")],
            updates: [], questions: ["What kind of pet does {p} have?", "What is the name of {p}'s pet?", "Does {p} have any animals at home?"],
            values: ["puppy", "kitten", "rabbit", "parrot", "tortoise", "hamster", "beagle", "tabby cat"]),
        FactKind(
            key: "job", statements: [("I started a new job as a {v} last week.", "What new job did {p} start?"), ("Work as a {v} is intense but I love it.", "What work does {p} find intense but love?"), ("Being a {v} means I'm on call a lot.", "Why is {p} on call a lot?"), ("I've been working as a {v} for a few years now.", "What has {p} been working as for a few years?")],
            updates: [("Big news, I quit and now I work as a {v}.", "What does {p} work as after quitting?"), ("I switched careers, I'm a {v} now.", "What career did {p} switch to?")],
            questions: ["What does {p} do for work?", "What is {p}'s job?", "What is {p}'s current profession?"],
            values: ["nurse", "software engineer", "pastry chef", "high school teacher", "architect", "paramedic", "lawyer", "graphic designer", "electrician", "pharmacist"]),
        FactKind(
            key: "city", statements: [("I live in {v} now, close to the river.", "Which city does {p} live in, close to the river?"), ("Life in {v} is expensive but fun.", "Where does {p} find life expensive but fun?"), ("Our apartment in {v} finally has heating.", "Where is the apartment of {p} that finally has heating?")],
            updates: [("We moved to {v} last month!", "Where did {p} move last month?"), ("Guess what, I relocated to {v} for good.", "Where did {p} relocate for good?")],
            questions: ["Where does {p} live?", "Which city is {p} based in?", "In what city does {p} live now?"],
            values: ["Lisbon", "Toronto", "Osaka", "Nairobi", "Krakow", "Austin", "Melbourne", "Edinburgh", "Bogota", "Hamburg"]),
        FactKind(
            key: "hobby", statements: [("I've gotten really into {v} lately.", "What has {p} gotten really into lately?"), ("Spent the whole weekend {v}, it clears my head.", "What does {p} spend weekends doing to clear their head?"), ("My new obsession is {v}.", "What is {p}'s new obsession?")],
            updates: [], questions: ["What hobby has {p} taken up?", "What does {p} like to do in free time?", "What is {p} into lately?"],
            values: ["rock climbing", "pottery", "birdwatching", "salsa dancing", "woodworking", "baking sourdough", "playing the cello", "trail running", "knitting", "chess"]),
        FactKind(
            key: "allergy", statements: [("Just so you know, I'm allergic to {v}.", "What did {p} say they are allergic to?"), ("Ugh, had a reaction to {v} again, my allergy is bad.", "What did {p} have a bad reaction to again?"), ("I can't have {v}, I'm seriously allergic.", "What can't {p} have?")],
            updates: [], questions: ["What is {p} allergic to?", "Which allergy does {p} have?", "What should {p} avoid eating?"],
            values: ["peanuts", "shellfish", "gluten", "strawberries", "sesame", "eggs", "penicillin"]),
        FactKind(
            key: "sibling", statements: [("My {v} {x} is coming to visit.", "Who is coming to visit {p}?"), ("I had dinner with my {v} {x} yesterday.", "Who did {p} have dinner with?"), ("My {v} {x} just got engaged!", "Which relative of {p} just got engaged?")],
            updates: [], questions: ["Who is {p}'s {v}?", "What is the name of {p}'s {v}?", "Which family member of {p} is named {x}?"],
            values: ["sister", "brother", "cousin", "grandmother", "uncle"]),
        FactKind(
            key: "food", statements: [("My favorite food has to be {v}.", "What does {p} say their favorite food has to be?"), ("I could eat {v} every single day.", "What could {p} eat every single day?"), ("Nothing beats a plate of {v} after work.", "What does {p} like a plate of after work?")],
            updates: [("Honestly I'm over {x}, these days I prefer {v}.", "What does {p} prefer these days?")],
            questions: ["What is {p}'s favorite food?", "What does {p} love to eat?", "Which dish does {p} like most?"],
            values: ["ramen", "paella", "dumplings", "lasagna", "tacos al pastor", "pho", "shakshuka", "sushi", "mushroom risotto"]),
        FactKind(
            key: "plan", statements: [("I'm going to {v} in {m}, already booked the tickets.", "Where has {p} already booked tickets to?"), ("Planning a trip to {v} in {m}.", "Where is {p} planning a trip to in {m}?"), ("In {m} I'm finally visiting {v}.", "Which place is {p} finally visiting in {m}?")],
            updates: [], questions: ["Where is {p} traveling to?", "When is {p} going to {v}?", "What trip is {p} planning?"],
            values: ["Iceland", "Peru", "Vietnam", "Morocco", "New Zealand", "Norway", "Japan", "Greece", "Chile"]),
        FactKind(
            key: "event", statements: [("Yesterday I ran my first {v}!", "What did {p} run for the first time?"), ("I went to a {v} last weekend, it was amazing.", "What amazing event did {p} go to last weekend?"), ("We hosted a {v} on Saturday.", "What did {p} host on Saturday?")],
            updates: [], questions: ["What did {p} do recently?", "When did {p} go to the {v}?", "What event did {p} attend?"],
            values: ["half marathon", "jazz concert", "charity gala", "pottery workshop", "book club meeting", "farmers market", "surprise party", "film festival"]),
    ]

    /// A fact told as an exchange, as people mostly tell things (SPEC.md §12.7): an opener that names the
    /// topic but not the value, the other person's follow-up question, and the answer holding the value
    /// (the evidence) in words that need the opener to be understood. The echo question mixes the
    /// opener's words and the answer's, as a reader of the whole exchange asks.
    struct Exchange {
        var opener: String
        var followUp: String
        var answer: String
        var echo: String
    }

    static let exchanges: [String: [Exchange]] = [
        "pet": [
            .init(opener: "Guess what, we got a new pet!", followUp: "No way! What kind? What's its name?", answer: "A {v}! We named it {x} and it already rules the house.", echo: "What did {p} name the new pet?"),
            .init(opener: "There's a new furry member of the family at our place.", followUp: "Aww, tell me everything!", answer: "It's a little {v} called {x}, so cute.", echo: "What is the little new family member of {p} called?"),
        ],
        "job": [
            .init(opener: "So I have some news about work, I changed jobs.", followUp: "Oh wow, what are you doing now?", answer: "I'm a {v} now, still learning the ropes.", echo: "What job is {p} still learning the ropes of?"),
            .init(opener: "My first day at the new workplace was today.", followUp: "How exciting! What's the role?", answer: "{v}, which is what I always wanted.", echo: "What role at the new workplace had {p} always wanted?"),
        ],
        "city": [
            .init(opener: "We finally found a place to live!", followUp: "That's great news! Where is it?", answer: "In {v}, close to the old town.", echo: "Where is {p}'s new place, close to the old town?"),
            .init(opener: "The move is done, all the boxes are unpacked.", followUp: "Finally! Which city did you end up in?", answer: "{v}. It already feels like home.", echo: "Which city already feels like home to {p} after the move?"),
        ],
        "hobby": [
            .init(opener: "I picked up a new hobby this month.", followUp: "Ooh, which one?", answer: "It's {v}, I'm hooked already.", echo: "Which new hobby is {p} hooked on?"),
            .init(opener: "I've been looking for something to do on weekends and I found it.", followUp: "Yeah? What is it?", answer: "{v}! It's harder than it looks but so much fun.", echo: "What weekend activity is harder than it looks for {p}?"),
        ],
        "allergy": [
            .init(opener: "The doctor finally told me what my allergy is.", followUp: "Oh no, what is it?", answer: "It's {v}, so no more of that for me.", echo: "What can {p} have no more of because of the allergy?"),
            .init(opener: "I had to go to the ER last night because of an allergic reaction.", followUp: "That's scary! What caused it?", answer: "{v}. I didn't even know it was in the dish.", echo: "What was in the dish that caused {p}'s allergic reaction?"),
        ],
        "sibling": [
            .init(opener: "Someone from my family is coming to stay with us.", followUp: "Fun! Who is it?", answer: "My {v} {x}, for a whole week.", echo: "Who from {p}'s family is coming to stay for a whole week?"),
        ],
        "food": [
            .init(opener: "I think I found my new favorite food.", followUp: "Ha, what is it?", answer: "{v}! I could eat it every day.", echo: "What new favorite food could {p} eat every day?"),
            .init(opener: "There's a dish I keep cooking over and over lately.", followUp: "Which one? I need ideas!", answer: "{v}, I've made it four times this month.", echo: "Which dish has {p} made four times this month?"),
        ],
        "plan": [
            .init(opener: "I booked a big trip for this year!", followUp: "Exciting! Where to?", answer: "{v}, in {m}. I can't wait.", echo: "Where is the big trip {p} can't wait for?"),
            .init(opener: "We're finally taking that vacation we always talked about.", followUp: "Where are you going?", answer: "To {v} in {m}, already counting the days.", echo: "Where is {p} going on the vacation they are counting the days to?"),
        ],
        "event": [
            .init(opener: "I did something last weekend I had never done before.", followUp: "Oh? What was it?", answer: "I went to a {v}, it was amazing.", echo: "What amazing thing did {p} go to last weekend for the first time?"),
            .init(opener: "Saturday was such a special day for me.", followUp: "Why, what happened?", answer: "We went to a {v} and stayed until the end.", echo: "What did {p} stay at until the end on Saturday?"),
        ],
    ]

    /// How often a fact gets a reaction, and how often a small-talk turn is topic chatter instead.
    static let reactionChance = 0.5, chatterChance = 0.25

    /// The other speaker's reaction to a fact, repeating its value (recipe 9): people echo what they
    /// hear, so the value's words are not only in the evidence, and who said them matters.
    static let reactions = [
        "Wait, {v}? That's so cool!", "Ooh, {v}! I've heard great things.", "Haha, {v}, of course. That's so you!",
        "{v}, really? I never would have guessed.", "Oh nice, {v}! You have to tell me more about it sometime.",
        "No way, {v}! My friend keeps talking about that too.",
    ]

    /// Chatter about a fact kind's topic with no value in it (recipe 9), said instead of small talk by
    /// either speaker: it shares the topic's words with the questions and is never evidence.
    static let topicChatter: [String: [String]] = [
        "pet": ["I keep thinking about getting a pet, but it's such a commitment.", "Do you like animals? I could never decide between cats and dogs."],
        "job": ["Work has been crazy for everyone lately.", "Do you ever think about changing jobs? I do all the time."],
        "city": ["I sometimes wonder what it would be like to live in another city.", "Rent in this city is getting ridiculous."],
        "hobby": ["I really need a new hobby, I'm so bored on weekends.", "You always have the most interesting hobbies."],
        "allergy": ["My cousin has so many allergies, eating out with her is hard.", "Is it allergy season already? My eyes are killing me."],
        "sibling": ["Family visits always wear me out, honestly.", "Do you see your family much these days?"],
        "food": ["I'm starving, what's your favorite thing to eat these days?", "I tried cooking something new and it was a disaster."],
        "plan": ["I really need a vacation, any travel tips?", "Booking trips is so stressful, there are too many options."],
        "event": ["Did you do anything fun last weekend?", "There are so many events in town this month, I can't keep up."],
    ]

    static let smallTalk = [
        "Haha, that's great!", "Oh wow, really?", "How was your week?", "Same here, honestly.", "That sounds fun!", "Good morning!",
        "Lol, classic.", "Sorry, I was busy all day.", "Anyway, what's new with you?", "Nice!", "I know, right?", "Totally agree.",
        "Ha, you always say that.", "Tell me more!", "Oh no, that's rough.", "Congrats!!", "Talk soon!", "Ok, see you later.",
        "It's been raining all day here.", "I'm so tired today.", "Did you watch the game last night?", "Thanks, that means a lot.",
        // Longer reactions and questions back, as real conversations have between the facts.
        "Wow, that's so cool! How did it feel when you finally got there?", "Hey! Long time no talk, how have you been doing lately?",
        "That's amazing, I'm really happy for you! You totally deserve it after all that hard work.",
        "Oh I love that! What made you decide to do it?", "Haha, I can totally picture that. You always find the funniest things!",
        "Thanks so much for asking, it really means a lot to me that you remember these things.",
        "That must have been really tough. How are you holding up with everything going on?",
        "Honestly same, this week has been a lot. Let's catch up properly soon, okay?",
        "Aww, that's so sweet! Do you have any pictures? I'd love to see them.", "Good luck with everything, keep me posted!",
        "What have you been up to since we last talked? Anything exciting happening?",
        "I totally get what you mean, it's hard to find the time for everything these days.",
        "Sounds like you had a really great time! Would you do it again?", "Take care of yourself, talk to you soon!",
        "Ha, that's hilarious. I can't believe that actually happened!", "That's really inspiring, thanks for sharing that with me.",
        "Oh really? I didn't know that about you! Tell me more about it.", "Have a great weekend, and say hi to everyone for me!",
    ]

    /// A template filled with a value, an extra, the speaker and a month (repeats pass none: facts with a
    /// month are not repeated).
    func fillStatement(_ t: String, _ v: String, _ x: String, who: String = "", month: String = "") -> String {
        t.replacingOccurrences(of: "{v}", with: v).replacingOccurrences(of: "{x}", with: x)
            .replacingOccurrences(of: "{m}", with: month).replacingOccurrences(of: "{p}", with: who)
    }

    mutating func conversation() -> Curriculum.Conversation {
        let a = pick(Self.firstNames)
        var b = pick(Self.firstNames)
        while b == a { b = pick(Self.firstNames) }
        let speakers = [a, b]
        var time: Int64 = 1_672_531_200_000_000 + Int64(int(0...300)) * 86_400_000_000  // from 2023
        var sessions: [Curriculum.Session] = []
        var questions: [Curriculum.Question] = []
        /// (speaker, fact key) → (value, extra, turn id, echo question), the latest statement.
        var known: [String: (String, String, String, String)] = [:]
        /// (speaker, fact key) → every turn stating the current value (a repeat adds one, an update resets).
        var stating: [String: [String]] = [:]
        let n = int(sessionCount)
        for s in 1...n {
            var turns: [Curriculum.Turn] = []
            func say(_ who: String, _ text: String) -> String {
                let id = "D\(s):\(turns.count + 1)"
                turns.append(.init(id: id, speaker: who, text: text))
                return id
            }
            let turnsInSession = int(8...16)
            var factSlots = Set<Int>()
            for _ in 0..<int(2...4) { factSlots.insert(int(1...(turnsInSession - 1))) }
            var t = 0
            /// The other speaker echoes the value just stated, in the next slot (if the session has one
            /// and it is not a fact's).
            func react(_ value: String) {
                guard echoes, t + 1 < turnsInSession, !factSlots.contains(t + 1), chance(Self.reactionChance) else { return }
                var line = fillStatement(pick(Self.reactions), value, "")
                if let f = line.first, f.isLowercase { line = f.uppercased() + line.dropFirst() }
                _ = say(speakers[(t + 1) % 2], line)
                t += 1
            }
            while t < turnsInSession {
                let who = speakers[t % 2]
                defer { t += 1 }
                if factSlots.contains(t) {
                    let kind = pick(Self.facts)
                    let key2 = "\(who)|\(kind.key)"
                    let isUpdate = known[key2] != nil
                    if repeats, let old = known[key2], !kind.statements.contains(where: { $0.0.contains("{m}") }), chance(0.5) {
                        // A repeated episode: the same fact again in other words (sleep should consolidate it).
                        let said = (sessions.flatMap(\.turns) + turns).first { $0.id == old.2 }?.text
                        let phrasings = kind.statements.filter { fillStatement($0.0, old.0, old.1) != said }
                        let (template, echo) = pick(phrasings.isEmpty ? kind.statements : phrasings)
                        let id = say(who, fillStatement(template, old.0, old.1, who: who))
                        turns[turns.count - 1].fact = kind.key
                        turns[turns.count - 1].repeats = old.2
                        stating[key2, default: []].append(id)
                        known[key2] = (old.0, old.1, id, fillStatement(echo, old.0, old.1, who: who))
                        continue
                    }
                    if isUpdate && kind.updates.isEmpty {
                        _ = say(who, pick(Self.smallTalk))
                        continue
                    }
                    var value = pick(kind.values)
                    if let old = known[key2] { while value == old.0 && kind.values.count > 1 { value = pick(kind.values) } }
                    let extra = kind.key == "pet" || kind.key == "sibling" ? pick(Self.firstNames) : (known[key2]?.0 ?? "")
                    let month = Fold.monthNames[int(0...11)]
                    let (template, echo) = isUpdate ? pick(kind.updates) : pick(kind.statements)
                    func fill(_ t: String) -> String { fillStatement(t, value, extra, who: who, month: month) }
                    let previous = known[key2]?.2
                    if !isUpdate, let forms = Self.exchanges[kind.key], chance(0.4) {
                        // Told as an exchange: opener, the other speaker's follow-up, the answer (evidence).
                        let x = pick(forms)
                        _ = say(who, fill(x.opener))
                        _ = say(speakers[(t + 1) % 2], x.followUp)
                        let id = say(who, fill(x.answer))
                        turns[turns.count - 1].fact = kind.key
                        known[key2] = (value, extra, id, fill(x.echo))
                        stating[key2] = [id]
                        t += 2
                        react(value)
                        continue
                    }
                    let text = fill(template)
                    let id = say(who, chance(0.3) ? text + " " + pick(Self.smallTalk) : text)
                    turns[turns.count - 1].fact = kind.key
                    turns[turns.count - 1].replaces = isUpdate ? previous : nil
                    known[key2] = (value, extra, id, fill(echo))
                    stating[key2] = [id]
                    react(value)
                } else if echoes, chance(Self.chatterChance) {
                    _ = say(who, pick(Self.topicChatter[pick(Self.facts).key] ?? Self.smallTalk))
                } else {
                    _ = say(who, pick(Self.smallTalk))
                    disclose(&turns)
                    warmly(&turns, to: speakers[(t + 1) % 2])
                    refine(&turns, who: who, known: known)
                    typedStatement(&turns, to: speakers[(t + 1) % 2])
                }
            }
            sessions.append(.init(index: s, time: time, turns: turns))
            time += Int64(int(3...30)) * 86_400_000_000
        }
        for (key, (value, extra, turn, echo)) in known.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "|")
            let who = String(parts[0])
            guard let kind = Self.facts.first(where: { $0.key == parts[1] }) else { continue }
            // Half the questions echo the evidence's own words, as questions written by someone who read
            // the conversation do; the other half paraphrase it.
            let q = chance(0.5) ? echo : pick(kind.questions).replacingOccurrences(of: "{p}", with: who).replacingOccurrences(of: "{v}", with: value)
                .replacingOccurrences(of: "{x}", with: extra)
            let evidence = stating[key] ?? [turn]
            // The date the (latest) evidence was said: its session's.
            let session = evidence.last.flatMap { $0.dropFirst().split(separator: ":").first.flatMap { Int($0) } }
            let time = sessions.first { $0.index == session }?.time ?? sessions[0].time
            questions.append(.init(text: cued(q, time), evidence: evidence, kind: kind.key))
        }
        return .init(id: id, speakers: speakers, sessions: sessions, questions: questions)
    }
}

/// The curriculum's seeded draws, on the conversation's generator and on the side generators its
/// options draw from (time cues, disclosures, warmth).
extension SplitMix64 {
    mutating func pick<T>(_ a: [T]) -> T { a[Int(next() % UInt64(a.count))] }
    mutating func chance(_ p: Double) -> Bool { Double(next() >> 11) / Double(1 << 53) < p }
}
