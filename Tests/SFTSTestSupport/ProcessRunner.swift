import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The result of running a process to completion.
public struct ProcessResult: Sendable, CustomStringConvertible {
    public let status: Int32
    public let standardOutput: String
    public let standardError: String

    public var description: String {
        "exit \(status)\n--- stdout\n\(standardOutput)--- stderr\n\(standardError)"
    }
}

/// Starts `process` while holding a lock that every launch in the tests shares. Foundation's
/// Process.run on Linux is not safe to call from several threads at once: parallel suites
/// crashed inside it (a memcpy from a bad pointer), so launches happen one at a time.
public func launchSerially(_ process: Process) throws {
    launchLock.lock()
    defer { launchLock.unlock() }
    try process.run()
}

private let launchLock = NSLock()

/// Runs programs for tests, with a time limit so a hung child fails the test instead of
/// hanging the suite.
public enum ProcessRunner {
    /// Runs `executable` with `arguments` and waits for it, killing it after `timeout` seconds.
    public static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String] = [:],
        currentDirectory: URL? = nil, input: Data? = nil, timeout: TimeInterval = 120
    ) throws -> ProcessResult {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        for key in ["SFTS_PASSWORD", "SFTS_NEW_PASSWORD", "SFTS_PKI_PASSPHRASE", "SFTS_HOST_CODE", "SFTS_HOME"] {
            merged[key] = nil
        }
        merged.merge(environment) { $1 }
        process.environment = merged
        if let currentDirectory {
            process.currentDirectoryURL = currentDirectory
        }
        let output = Pipe()
        let errors = Pipe()
        let stdin = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = stdin
        try launchSerially(process)
        if let input {
            stdin.fileHandleForWriting.write(input)
        }
        try? stdin.fileHandleForWriting.close()

        // The queue keeps a cancelled item until its deadline, so the item references the
        // process weakly. A strong reference would keep the process and its pipes open for the
        // whole timeout, and a busy test run would pile up over a thousand descriptors.
        let killer = DispatchWorkItem { [weak process] in
            if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: killer)
        // Read both pipes at once, so a child that fills one of them cannot block.
        let errorBox = DataBox()
        let done = DispatchSemaphore(value: 0)
        let reader = Thread {
            errorBox.data = errors.fileHandleForReading.readDataToEndOfFile()
            done.signal()
        }
        reader.start()
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        process.waitUntilExit()
        killer.cancel()
        try? output.fileHandleForReading.close()
        try? errors.fileHandleForReading.close()
        return ProcessResult(
            status: process.terminationStatus,
            standardOutput: String(decoding: outputData, as: UTF8.self),
            standardError: String(decoding: errorBox.data, as: UTF8.self))
    }

    private final class DataBox: @unchecked Sendable {
        var data = Data()
    }

    /// Finds a program on PATH.
    public static func which(_ name: String) -> URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for folder in path.split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(folder)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
        }
        return nil
    }
}

/// A folder under the system temporary folder, removed when the value is deinitialised.
public final class TemporaryFolder: @unchecked Sendable {
    public let url: URL

    public init(prefix: String = "sfts-test") throws {
        var template = Array(
            FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-XXXXXX").path.utf8CString)
        guard let created = mkdtemp(&template) else {
            throw CocoaError(.fileWriteUnknown)
        }
        url = URL(fileURLWithPath: String(cString: created))
    }

    deinit {
        try? FileManager.default.removeItem(at: url)
    }

    public func path(_ component: String) -> URL {
        url.appendingPathComponent(component)
    }
}

/// Free TCP ports on loopback.
public enum FreePort {
    /// Asks the kernel for a free port on 127.0.0.1 and releases it for the caller to bind.
    public static func pick() throws -> UInt16 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return UInt16(bigEndian: address.sin_port)
    }

    /// Returns true when something accepts TCP connections on 127.0.0.1:`port`.
    public static func isListening(_ port: UInt16) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass; returns whether it held.
public func waitUntil(_ seconds: TimeInterval, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date() + seconds
    while Date() < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return try condition()
}
