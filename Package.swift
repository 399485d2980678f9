// swift-tools-version:5.9
import PackageDescription

let package = Package(
    name: "sfts",
    products: [
        .executable(name: "sfts", targets: ["sfts"])
    ],
    targets: [
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),
        .systemLibrary(name: "CSystem", path: "Sources/CSystem"),
        .target(name: "SFTSLogging"),
        .target(name: "SFTSProtocol"),
        .target(name: "SFTSCrypto", dependencies: ["COpenSSL"]),
        .target(name: "SFTSTLS", dependencies: ["SFTSCrypto", "COpenSSL"]),
        .target(
            name: "SFTSServer",
            dependencies: ["SFTSProtocol", "SFTSTLS", "SFTSCrypto", "SFTSLogging", "CSystem"]
        ),
        .target(
            name: "SFTSClient",
            dependencies: ["SFTSProtocol", "SFTSTLS", "SFTSCrypto", "SFTSLogging", "CSystem"]
        ),
        .target(
            name: "SFTSCommands",
            dependencies: ["SFTSClient", "SFTSServer", "SFTSCrypto", "SFTSProtocol", "SFTSLogging"]
        ),
        .executableTarget(name: "sfts", dependencies: ["SFTSCommands"]),
        .target(
            name: "SFTSTestSupport",
            dependencies: ["SFTSCrypto"],
            path: "Tests/SFTSTestSupport"
        ),
        .testTarget(
            name: "SFTSUnitTests",
            dependencies: [
                "SFTSProtocol", "SFTSCrypto", "SFTSTLS", "SFTSLogging", "SFTSServer", "SFTSClient",
                "SFTSCommands", "SFTSTestSupport",
            ]
        ),
        .testTarget(
            name: "SFTSAdversarialTests",
            dependencies: ["sfts", "SFTSTestSupport", "SFTSProtocol", "SFTSTLS", "SFTSCrypto"]
        ),
        .testTarget(
            name: "SFTSEndToEndTests",
            dependencies: ["sfts", "SFTSTestSupport"]
        ),
    ]
)
