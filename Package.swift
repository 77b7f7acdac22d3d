// swift-tools-version:6.2
import PackageDescription

// Kept lean on purpose: CI builds from a fresh clone on 2 cores (docs/architecture.md, "Facts the code relies on").
// Hummingbird's default traits pull in swift-configuration, which nothing here uses.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "atelier",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "atelier", targets: ["atelier"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        // Webhook delivery. HummingbirdTesting builds it for the tests already, so CI compiles it once either way.
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        // The shared database for several API nodes (issue 15). PostgresClient is a ServiceLifecycle service.
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // /metrics (issue 18): swift-metrics is already built for Hummingbird; swift-prometheus renders the text.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // The system's libsqlite3 (Debian: libsqlite3-dev); a thin typed wrapper lives in AtelierPersistence.
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .target(
            name: "AtelierCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .target(
            name: "AtelierPersistence",
            dependencies: [
                "AtelierCore", "CSQLite",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // S3 from Swift: a SigV4 signer on swift-crypto and put/get/head/delete over AsyncHTTPClient (issue 16).
        .target(
            name: "AtelierS3",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "AtelierStorage",
            dependencies: ["AtelierCore", "AtelierS3", "AtelierMetrics", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // Every metric's name and the Prometheus registry behind /metrics.
        .target(
            name: "AtelierMetrics",
            dependencies: [
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "AtelierEngine",
            dependencies: [
                "AtelierCore", "AtelierMetrics",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The run use case for every API: submit, read, list, cancel, wait, follow; input images, outbound fetches
        // and webhook delivery. No HTTP server types: the edge (AtelierHTTP) translates onto it.
        .target(
            name: "AtelierRuns",
            dependencies: [
                "AtelierCore", "AtelierEngine", "AtelierMetrics",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "AtelierHTTP",
            dependencies: [
                "AtelierCore", "AtelierRuns", "AtelierStorage", "AtelierEngine", "AtelierMetrics",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            swiftSettings: strict
        ),
        // A node assembled from its settings (`buildApplication`): what `atelier serve` and `atelier worker` run,
        // and what tests build on a temporary database.
        .target(
            name: "AtelierServer",
            dependencies: [
                "AtelierCore", "AtelierPersistence", "AtelierStorage", "AtelierS3", "AtelierEngine", "AtelierRuns", "AtelierHTTP",
                "AtelierMetrics",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "AtelierTesting",
            dependencies: ["AtelierCore", "AtelierPersistence", "AtelierEngine", "AtelierRuns"],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "atelier",
            dependencies: [
                "AtelierCore", "AtelierPersistence", "AtelierHTTP", "AtelierServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // bench/database.py's claim-latency probe; not shipped.
        .executableTarget(
            name: "atelier-bench",
            dependencies: ["AtelierCore", "AtelierPersistence", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AtelierS3Tests",
            dependencies: ["AtelierS3", .product(name: "AsyncHTTPClient", package: "async-http-client")]
        ),
        .testTarget(
            name: "AtelierStorageTests",
            dependencies: ["AtelierStorage", "AtelierS3", "AtelierCore",
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "AtelierCoreTests",
            dependencies: ["AtelierCore", "AtelierTesting"]
        ),
        .testTarget(
            name: "AtelierEngineTests",
            dependencies: ["AtelierEngine", "AtelierCore", "AtelierMetrics", "AtelierPersistence", "AtelierStorage", "AtelierTesting"]
        ),
        .testTarget(
            name: "AtelierPersistenceTests",
            dependencies: ["AtelierPersistence", "AtelierCore", .product(name: "PostgresNIO", package: "postgres-nio")]
        ),
        // The application built as `atelier serve` builds it, driven without a socket.
        .testTarget(
            name: "AtelierServerTests",
            dependencies: [
                "AtelierServer", "AtelierCore", "AtelierTesting",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "AtelierRunsTests",
            dependencies: ["AtelierRuns", "AtelierCore", "AtelierEngine", "AtelierPersistence", "AtelierStorage", "AtelierTesting"]
        ),
        .testTarget(
            name: "AtelierHTTPTests",
            dependencies: [
                "AtelierHTTP", "AtelierRuns", "AtelierCore", "AtelierPersistence", "AtelierStorage", "AtelierEngine", "AtelierTesting",
                "AtelierMetrics",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
    ]
)
