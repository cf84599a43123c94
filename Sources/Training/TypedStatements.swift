import Foundation
import Workloads

/// The typed statements (recipe 17, ``Curriculum`` with `typed`): what the type head learns from besides
/// the fact kinds. The fact kinds state each type in one template family (a hobby or a favourite food is
/// the only preference, a trip the only plan), and a head trained on them alone typed most real turns
/// wrong (SPEC.md §12.7, "Type head"). These say each type in many ways — likes and dislikes, intentions
/// and goals, things that happened, standing facts of a life — with a friend's openers and closers, in
/// place of a share of the small talk, drawn from a generator of their own (the conversations' other
/// turns and their questions do not change). No question asks about them.
extension Generator {
    /// The share of small-talk turns that become a typed statement (with typed on).
    static let typedChance = 0.25

    /// Templates per type (the fact kind each teaches, ``Trainer/typeOfFactKind``); `{…}` slots are filled
    /// from ``typedSlots``.
    static let typedStatements: [(kind: String, templates: [String])] = [
        (
            "liking",
            [
                "I'm a huge fan of {genre} movies, they pull me in every time.", "Nothing relaxes me quite like {act}.",
                "{Act} is my favorite way to unwind after a long day.", "I love {act}, it's where I feel most like myself.",
                "I can't stand {dislike}, it drives me crazy.", "My go-to comfort food is {food}, always has been.",
                "I'm really into {genre} music these days, it's all I listen to.", "{Act} has always been my happy place.",
                "To be honest I'm not a big fan of {dislike}.", "Give me a good {genre} book and my weekend is set.",
                "I adore {animal}s, they're the sweetest creatures.", "Whenever I get the chance I go {act}, I just love it.",
                "My favorite season is {season}, I love everything about it.", "I'm all about {act}, it keeps me sane.",
                "I really enjoy {act} with my {rel} on weekends.", "{Act} is so therapeutic for me, it clears my mind.",
                "I've never liked {dislike}, not even as a kid.", "I'm obsessed with {food} lately, I could have it every day.",
                "Nothing beats a quiet evening of {act} for me.", "{Genre} stories are my favorite, I get lost in them for hours.",
                "I'd pick {act} over a night out any day.", "I've always been drawn to {act}, it feels like home.",
            ]
        ),
        (
            "intention",
            [
                "I'm planning to {goal} {later}.", "{Later} I'm going to {goal}, I've been preparing for ages.",
                "I want to {goal} someday, it's been a dream of mine for years.", "I'm thinking about trying to {goal} {later}.",
                "My goal for this year is to {goal}.", "We're hoping to {goal} before the end of the year.",
                "I signed up to {goal} {later}, wish me luck!", "I'm going to start {act} {later}, I'm so excited.",
                "I'm saving up so I can {goal}.", "I'd love to {goal} one day.", "I've decided I'm going to {goal} after the holidays.",
                "{Later} we're going {act} if the weather holds.", "I'm applying to {school} for the fall, fingers crossed.",
                "We're throwing a party for my {rel} {later}.", "I'm seriously considering a move to {city} {later}.",
                "My next step is to {goal}, I've already made a plan.", "I'll be visiting my {rel} in {city} {later}.",
                "I've got an interview {later} for a {job} position.", "I can't wait to {goal}, it's all I think about.",
            ]
        ),
        (
            "happening",
            [
                "{Earlier} I {past}, it was amazing.", "I {past} {earlier} with my {rel}.", "I finally {past} {earlier}!",
                "{Earlier} I {past} and I'm still thinking about it.", "We {past} {earlier}, what a day.",
                "I had a rough week, my car broke down on the highway {earlier}.", "I went to a {event} {earlier} and met so many people.",
                "We celebrated my {rel}'s birthday at a {venue} {earlier}.", "I gave a presentation at work {earlier} about our new project.",
                "I got a letter from {school} {earlier}, I got in!", "{Earlier} we visited my {rel} in {city}.",
                "I volunteered at the {venue} {earlier}, it was so rewarding.", "I ran into an old friend at the {venue} {earlier}.",
                "Guess what, I {past} {earlier}!", "So {earlier} I {past}, totally spontaneous.", "I lost my wallet at the {venue} {earlier}, what a mess.",
                "My {rel} and I {past} {earlier}, it was special.", "I took my {rel} to a {event} {earlier}, they loved it.",
            ]
        ),
        (
            "standing",
            [
                "I work as a {job}, have for a while now.", "My {rel} lives in {city}, so I don't see them much.", "I have {count} kids, they keep me busy.",
                "I grew up in {city}, a long time ago now.", "I've been a {job} for {count} years.", "I studied {subject} in college.",
                "My {rel} is a {job}, just like our dad was.", "I'm originally from {city}.", "I speak {language} at home with my family.",
                "My partner and I have been married for {count} years.", "I run my own {business}, it's a lot of work.",
                "I've been vegetarian since I was a teenager.", "We live in a small apartment near the {venue}.",
                "My {rel} and I share a house with two roommates.", "I'm the oldest of {count} siblings.", "I teach {subject} at a high school.",
                "Our family has a little cabin up north.", "I'm a twin, my brother and I look exactly alike.", "I volunteer at the {venue} every week.",
                "I have asthma, so running is hard for me.", "My {rel} raised me, my parents worked abroad.",
            ]
        ),
    ]

    /// Fillers for the slots; a capitalized slot (`{Act}`) is filled capitalized.
    static let typedSlots: [String: [String]] = [
        "act": [
            "hiking", "painting", "baking bread", "swimming", "gardening", "yoga", "cycling", "reading", "playing guitar", "photography",
            "journaling", "fishing", "skateboarding", "running", "dancing", "camping", "knitting", "surfing", "writing poetry", "playing video games",
            "woodworking", "birdwatching", "cooking new recipes", "rock climbing", "singing",
        ],
        "past": [
            "went camping by the lake", "ran my first 10K", "took the kids to the aquarium", "finished my first quilt",
            "adopted a rescue dog", "got promoted at work", "hosted a game night", "went to a concert downtown", "tried a new recipe",
            "passed my driving test", "built a birdhouse with my nephew", "finished reading a huge novel", "went skydiving",
            "moved into a new place", "sold my old car", "won a local chess tournament", "fixed up an old bike", "went to a woodworking class",
        ],
        "goal": [
            "run a marathon", "open my own bakery", "learn Spanish", "visit Japan", "write a novel", "train for a triathlon", "go back to school",
            "buy a house", "start a podcast", "climb Kilimanjaro", "learn to play the piano", "start my own business", "travel around Europe",
            "become a paramedic", "get my teaching certificate", "build a treehouse for the kids",
        ],
        "later": [
            "next month", "this weekend", "in the spring", "next year", "tomorrow", "next week", "this summer", "in a couple of weeks",
            "after graduation", "in October",
        ],
        "earlier": [
            "yesterday", "last weekend", "two weeks ago", "on Saturday", "last night", "a few days ago", "last month", "this morning",
            "last Tuesday", "over the holidays",
        ],
        "genre": ["fantasy", "sci-fi", "horror", "romance", "mystery", "jazz", "country", "classical", "drama", "comedy"],
        "food": ["spicy ramen", "mac and cheese", "homemade pizza", "chocolate cake", "pho", "grilled salmon", "tacos", "dumplings"],
        "dislike": ["crowded malls", "cold weather", "horror movies", "waking up early", "loud parties", "mushrooms", "long drives", "small talk"],
        "animal": ["parrot", "horse", "cat", "dog", "rabbit", "owl"],
        "season": ["autumn", "winter", "spring", "summer"],
        "rel": ["sister", "brother", "mom", "dad", "grandma", "cousin", "kids", "husband", "wife", "best friend"],
        "city": ["Seattle", "Boston", "Denver", "Chicago", "Madrid", "Dublin", "Vancouver", "Sydney", "Portland", "Atlanta"],
        "job": ["nurse", "teacher", "software developer", "chef", "social worker", "mechanic", "accountant", "photographer", "firefighter"],
        "school": ["the state university", "an art school", "a nursing program", "the community college", "a film school"],
        "event": ["book signing", "music festival", "charity gala", "art fair", "street festival", "neighborhood cleanup", "basketball game"],
        "venue": ["library", "community center", "hospital", "park", "museum", "farmers market", "gym", "cafe", "beach"],
        "count": ["two", "three", "four", "five", "ten"],
        "subject": ["biology", "history", "graphic design", "psychology", "music", "nursing", "economics"],
        "language": ["Spanish", "Portuguese", "Korean", "French", "Polish", "Arabic"],
        "business": ["bakery", "clothing store", "bike repair shop", "coffee shop", "landscaping company"],
    ]

    /// How friends wrap what they tell: an opener or a closer, each a third of the time (`{n}` = the other speaker).
    static let typedOpeners = ["Thanks, {n}! ", "Hey {n}! ", "Wow, that's awesome! ", "Haha, same. ", "You know what? ", "Oh, by the way. "]
    static let typedClosers = [" What about you?", " Have you ever tried it?", " It's been a great experience so far.", " I'll send you a pic!",
                               " Anything new with you?", " It means a lot to me."]

    /// Fills `{slot}` / `{Slot}` in `template` from ``typedSlots``.
    static func fillTyped(_ template: String, _ r: inout SplitMix64) -> String {
        var out = template
        while let open = out.firstIndex(of: "{"), let close = out[open...].firstIndex(of: "}") {
            let name = String(out[out.index(after: open)..<close])
            let key = name.lowercased()
            var value = r.pick(typedSlots[key] ?? [key])
            if name.first?.isUppercase == true, let f = value.first { value = f.uppercased() + value.dropFirst() }
            out.replaceSubrange(open...close, with: value)
        }
        return out
    }

    /// A typed statement in place of the small talk just said, a quarter of the time (with typed on).
    mutating func typedStatement(_ turns: inout [Curriculum.Turn], to other: String) {
        guard var r = typing, !turns.isEmpty, turns[turns.count - 1].fact == nil else { return }
        defer { typing = r }
        guard r.chance(Self.typedChance) else { return }
        let (kind, templates) = r.pick(Self.typedStatements)
        var text = Self.fillTyped(r.pick(templates), &r)
        if let f = text.first, f.isLowercase { text = f.uppercased() + text.dropFirst() }
        switch r.next() % 3 {
        case 0: text = r.pick(Self.typedOpeners).replacingOccurrences(of: "{n}", with: other) + text
        case 1: text += r.pick(Self.typedClosers)
        default: break
        }
        turns[turns.count - 1].text = text
        turns[turns.count - 1].fact = kind
    }
}
