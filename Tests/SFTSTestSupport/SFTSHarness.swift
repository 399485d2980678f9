import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where the built `sfts` binary is: `SFTS_BINARY`, else next to the test bundle in the build
/// products folder, else `.build/debug/sfts` under the package.
public enum SFTSBinary {
    public static let url: URL = {
        if let path = ProcessInfo.processInfo.environment["SFTS_BINARY"] {
            return URL(fileURLWithPath: path)
        }
        let besideTests = Bundle.main.bundleURL.appendingPathComponent("sfts")
        if FileManager.default.isExecutableFile(atPath: besideTests.path) {
            return besideTests
        }
        var folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = folder.appendingPathComponent(".build/debug/sfts")
            if FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
            folder = folder.deletingLastPathComponent()
        }
        return besideTests
    }()
}

/// Secrets the tests use. The passphrase and passwords meet the length rules.
public enum TestSecrets {
    public static let pkiPassphrase = "test pki passphrase, long enough"
    public static let alicePassword = "amber lantern orbit staple ninety"
    public static let bobPassword = "violet harbor quilt mosaic seven"
}

/// Failures of the harness itself.
public struct HarnessError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// A server state root made by `sfts ca init` and a running `sfts serve` on free loopback
/// ports. `stop()` ends it with SIGTERM; deinit stops it too.
public final class TestServer: @unchecked Sendable {
    public let folder: TemporaryFolder
    public let root: URL
    public let filePort: UInt16
    public let enrollmentPort: UInt16
    public let hostCode: String
    private var process: Process?
    public let logFile: URL

    /// Creates a state root with 2048-bit keys and starts the server on it.
    ///
    /// - Parameter listenAddress: The numeric address to listen on; `::ffff:127.0.0.1` makes an
    ///   IPv6 socket that receives IPv4 loopback clients as IPv4-mapped addresses.
    /// - Parameter existingRoot: A state root made beforehand, such as by `sfts ca import`;
    ///   without it the server gets a new one from `sfts ca init`.
    public init(extraArguments: [String] = [], listenAddress: String = "127.0.0.1", existingRoot: URL? = nil) throws {
        folder = try TemporaryFolder(prefix: "sfts-server")
        if let existingRoot {
            root = existingRoot
        } else {
            root = folder.path("root")
            let initResult = try ProcessRunner.run(
                SFTSBinary.url,
                [
                    "ca", "init", "--root", root.path, "--key-bits", "2048", "--host", "localhost", "--host",
                    "127.0.0.1",
                ],
                environment: ["SFTS_PKI_PASSPHRASE": TestSecrets.pkiPassphrase])
            guard initResult.status == 0 else {
                throw HarnessError("ca init failed: \(initResult)")
            }
        }
        hostCode = try String(contentsOf: root.appendingPathComponent("certificates/host_code"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        logFile = folder.path("serve.out")

        var lastError: Error = HarnessError("no attempt")
        for _ in 0..<5 {
            let ports = (try FreePort.pick(), try FreePort.pick())
            guard ports.0 != ports.1 else { continue }
            do {
                process = try Self.launch(
                    root: root, ports: ports, log: logFile, extra: ["--listen", listenAddress] + extraArguments)
                filePort = ports.0
                enrollmentPort = ports.1
                return
            } catch {
                lastError = error
            }
        }
        throw lastError
    }

    /// Starts `sfts serve` and waits until both ports accept connections.
    private static func launch(root: URL, ports: (UInt16, UInt16), log: URL, extra: [String]) throws
        -> Process
    {
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = SFTSBinary.url
        process.arguments =
            [
                "serve", "--root", root.path, "--port", String(ports.0),
                "--csr-port", String(ports.1),
            ] + extra
        var environment = ProcessInfo.processInfo.environment
        environment["SFTS_PKI_PASSPHRASE"] = TestSecrets.pkiPassphrase
        process.environment = environment
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try launchSerially(process)

        let deadline = Date() + 30
        while Date() < deadline {
            if !process.isRunning {
                let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                throw HarnessError("sfts serve exited with \(process.terminationStatus): \(output)")
            }
            if FreePort.isListening(ports.0) && FreePort.isListening(ports.1) {
                return process
            }
            usleep(20_000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        throw HarnessError("sfts serve did not listen within 30 s")
    }

    deinit {
        stop()
    }

    /// The server's combined log output so far.
    public var log: String {
        (try? String(contentsOf: logFile, encoding: .utf8)) ?? ""
    }

    public var isRunning: Bool { process?.isRunning ?? false }

    /// The server's process id, or 0 when it is not running.
    public var pid: Int32 { process?.processIdentifier ?? 0 }

    /// Sends SIGTERM and waits for the process; kills it after 10 s. Returns its exit status.
    @discardableResult
    public func stop() -> Int32? {
        guard let process else { return nil }
        self.process = nil
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date() + 10
            while process.isRunning && Date() < deadline {
                usleep(20_000)
            }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
            }
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Runs `sfts` with server-side arguments, such as `user role`, against this root.
    public func admin(_ arguments: [String]) throws -> ProcessResult {
        try ProcessRunner.run(SFTSBinary.url, arguments + ["--root", root.path])
    }

    /// The path of a file in the state root.
    public func file(_ relative: String) -> URL {
        root.appendingPathComponent(relative)
    }
}

/// A client home folder for one user, with the environment its commands run in.
public final class TestClient: @unchecked Sendable {
    public let user: String
    public var password: String
    public let home: URL
    public let workFolder: URL
    private let folder: TemporaryFolder

    public init(user: String, password: String) throws {
        self.user = user
        self.password = password
        folder = try TemporaryFolder(prefix: "sfts-client")
        home = folder.path("home")
        workFolder = folder.path("work")
        try FileManager.default.createDirectory(at: workFolder, withIntermediateDirectories: true)
    }

    public var environment: [String: String] {
        ["SFTS_HOME": home.path, "SFTS_PASSWORD": password]
    }

    /// Runs `sfts` as this user, in the client's work folder.
    public func run(_ arguments: [String], extraEnvironment: [String: String] = [:]) throws -> ProcessResult {
        try ProcessRunner.run(
            SFTSBinary.url, arguments, environment: environment.merging(extraEnvironment) { $1 },
            currentDirectory: workFolder)
    }

    /// Enrolls with the host code into profile `profile`.
    public func enroll(_ server: TestServer, profile: String = "default") throws -> ProcessResult {
        try run(
            [
                "enroll", "--server", "127.0.0.1", "--user", user, "--port", String(server.filePort),
                "--csr-port", String(server.enrollmentPort), "--key-bits", "2048", "--profile", profile,
            ], extraEnvironment: ["SFTS_HOST_CODE": server.hostCode])
    }

    public func profileFile(_ name: String, profile: String = "default") -> URL {
        home.appendingPathComponent("profiles/\(profile)/\(name)")
    }

    /// A file in the work folder.
    public func work(_ name: String) -> URL {
        workFolder.appendingPathComponent(name)
    }
}
