// swift-tools-version:6.0
// PSM — a memory engine for LLM agents. See README.md, ARCHITECTURE.md and SPEC.md.
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// Release builds use the default x86-64 target for portability; see ARCHITECTURE.md ("CPU target").
let package = Package(
    name: "psm",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Journal", targets: ["Journal"]),
        .library(name: "JournalPostgres", targets: ["JournalPostgres"]),
        .library(name: "Inference", targets: ["Inference"]),
        .library(name: "Projections", targets: ["Projections"]),
        .library(name: "Engine", targets: ["Engine"]),
        .executable(name: "psm", targets: ["psm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", from: "0.12.1"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // C libraries from Debian's -dev packages (see README.md). Nothing but the one Swift file
        // named in ARCHITECTURE.md imports each of them.
        .systemLibrary(name: "CLMDB", path: "Sources/CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(
            name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        .target(name: "LMDB", dependencies: ["CLMDB"], swiftSettings: strict),
        .target(
            name: "Journal",
            dependencies: ["LMDB", "CZstd", "CKernels", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        .target(
            name: "Inference", dependencies: ["COpenBLAS", "CKernels", .product(name: "Crypto", package: "swift-crypto")], swiftSettings: strict),
        // The journal of record on PostgreSQL (issue 9): the same v1 records, stored as bytea.
        .target(
            name: "JournalPostgres",
            dependencies: ["Journal", .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Nodes over the PostgreSQL journal: partition ownership (advisory locks) and projections of
        // the owned partitions.
        .target(
            name: "Cluster",
            dependencies: ["Journal", "JournalPostgres", "Projections", "Engine", "Inference", .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Crypto", package: "swift-crypto"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Small C kernels with run-time CPU dispatch (exact integer results on every path).
        .target(name: "CKernels", path: "Sources/CKernels"),
        // The CLI's report for SIGBUS/SIGSEGV (a damaged LMDB file can fault on read: LMDB has no page checksums).
        .target(name: "CSignals", path: "Sources/CSignals"),
        .target(
            name: "Projections",
            dependencies: ["Journal", "LMDB", "CKernels", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // The facade apps import: commands, the policy's decisions and every read.
        .target(
            name: "Engine",
            dependencies: ["Journal", "Projections", "Inference", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // What the interfaces share: wire shapes, request checks, API keys (no server code).
        .target(
            name: "API", dependencies: ["Engine", "Projections", "Journal", "Inference", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // The HTTP API (Hummingbird).
        .target(
            name: "Server",
            dependencies: ["API", "Engine", "Projections", .product(name: "Hummingbird", package: "hummingbird"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // The MCP server (modelcontextprotocol/swift-sdk), stdio.
        .target(
            name: "MCPServer",
            dependencies: ["API", "Engine", "Projections", .product(name: "MCP", package: "swift-sdk"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        // Training of the PSM's heads on the project's own curriculum.
        .target(name: "Training", dependencies: ["Engine", "Projections", "Inference", "Journal", "Workloads"], swiftSettings: strict),
        // Seeded synthetic workloads for benchmarks and crash tests; never on the product path.
        .target(name: "Workloads", dependencies: ["Journal", "Projections"], swiftSettings: strict),

        .executableTarget(
            name: "psm",
            dependencies: ["Journal", "JournalPostgres", "Cluster", "LMDB", "Inference", "Projections", "Engine", "Training", "Workloads", "API", "Server", "MCPServer", "CSignals", .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "Crypto", package: "swift-crypto")],
            path: "Sources/Tools/psm", swiftSettings: strict),
        // Fuzz targets (libFuzzer with -sanitize=fuzzer; replays a corpus without it). Not the product path.
        .executableTarget(
            name: "psm-fuzz",
            dependencies: ["Journal", "Inference", "Projections", "API"],
            path: "Sources/Tools/psm-fuzz", swiftSettings: strict),
        .executableTarget(
            name: "psm-torture",
            dependencies: ["Journal", "Workloads"],
            path: "Sources/Tools/psm-torture", swiftSettings: strict),

        .testTarget(name: "LMDBTests", dependencies: ["LMDB"], swiftSettings: strict),
        .testTarget(name: "JournalTests", dependencies: ["Journal", "JournalPostgres", "LMDB", "CKernels", "Workloads", .product(name: "PostgresNIO", package: "postgres-nio")], swiftSettings: strict),
        .testTarget(name: "ProjectionsTests", dependencies: ["Projections", "CKernels", "Journal", "LMDB", "Workloads"], swiftSettings: strict),
        .testTarget(
            name: "ClusterTests", dependencies: ["Cluster", "Engine", "JournalPostgres", "Projections", "Journal", "Workloads", .product(name: "PostgresNIO", package: "postgres-nio")],
            swiftSettings: strict),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Training", "Projections", "Journal", "Inference", "Workloads"], swiftSettings: strict),
        .testTarget(name: "InferenceTests", dependencies: ["Inference", "CKernels"], swiftSettings: strict),
        .testTarget(name: "ToolsTests", dependencies: ["Journal", "Workloads", "Engine", "Projections", "API", "Server", .product(name: "MCP", package: "swift-sdk"), .product(name: "SystemPackage", package: "swift-system")], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
