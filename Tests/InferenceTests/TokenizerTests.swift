import Foundation
import Inference
import Testing

@Suite struct TokenizerTests {
    /// Every case of the fixture must give exactly the reference ids.
    @Test func matchesReferenceOnFixture() throws {
        if RealModel.skip { return }
        let dir = try #require(RealModel.directory, "all-MiniLM-L6-v2 not found; run scripts/setup.sh or set PSM_MINILM_DIR")
        let vocab = try String(contentsOfFile: dir + "/vocab.txt", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let tok = try WordPieceTokenizer(vocabulary: vocab.last == "" ? Array(vocab.dropLast()) : vocab)
        let lines = try String(contentsOfFile: repoFixture("tokenizer/wordpiece-cases.jsonl"), encoding: .utf8).split(separator: "\n")
        var checked = 0, failed = 0
        for line in lines.dropFirst() {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let text = try #require(obj["text"] as? String)
            let ids = try #require(obj["ids"] as? [Int]).map(Int32.init)
            let got = tok.encode(text).ids
            if got != ids {
                failed += 1
                if failed <= 10 { Issue.record("case \(checked): \(text.debugDescription.prefix(120)) expected \(ids.suffix(30)) got \(got.suffix(30))") }
            }
            checked += 1
        }
        #expect(checked >= 2000)
        #expect(failed == 0, "\(failed) of \(checked) cases differ")
    }

    @Test func truncationKeepsSpecialTokensAndReports() throws {
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "##b", ",", "hello"]
        let tok = try WordPieceTokenizer(vocabulary: vocab)
        #expect(tok.encode("a b a b", maxLength: 4) == .init(ids: [2, 5, 6, 3], truncatedTokens: 2))
        #expect(tok.encode("", maxLength: 4) == .init(ids: [2, 3], truncatedTokens: 0))
        #expect(tok.encode("abb").ids == [2, 5, 7, 7, 3])
        #expect(tok.encode("abc").ids == [2, 1, 3], "an unmatched piece makes the whole word [UNK]")
        #expect(tok.encode("Hello,b").ids == [2, 9, 8, 6, 3])
        #expect(tok.encode("a[MASK]b").ids == [2, 5, 4, 6, 3])
        #expect(throws: InferenceError.self) { try WordPieceTokenizer(vocabulary: ["a", "b"]) }
    }
}
