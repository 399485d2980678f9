import Foundation
import SFTSCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// `sfts demo`: the whole job on loopback in a temporary folder, by running this same binary
/// as an operator and a user would, printing each command and what it printed.
enum DemoCommand {
    static func run(_ arguments: ParsedArguments) throws -> ExitCode {
        let keyBits = try arguments.integer("--key-bits", in: 2048...16384) ?? 3072
        let demo = try Demo(keyBits: keyBits)
        defer {
            demo.stopServer()
            if arguments.flag("--keep") {
                Console.out("\nKept the demo folder: \(demo.folder.path)")
            } else {
                try? FileManager.default.removeItem(at: demo.folder)
            }
        }
        do {
            try demo.run()
            Console.out("\nDemo finished: every step succeeded.")
            return .success
        } catch let failure as DemoFailure {
            Console.error("sfts: error: demo step failed: \(failure.message)")
            return failure.code
        }
    }
}

private struct DemoFailure: Error {
    let message: String
    let code: ExitCode
}

private final class Demo {
    let folder: URL
    let executable: URL
    let keyBits: Int
    let root: URL
    let work: URL
    var environment: [String: String]
    var server: Process?
    var step = 0

    init(keyBits: Int) throws {
        let base = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("sfts-demo-XXXXXX")
        var template = Array(base.path.utf8CString)
        guard let created = mkdtemp(&template) else {
            throw UsageError("cannot create a temporary folder: \(String(cString: strerror(errno)))")
        }
        folder = URL(fileURLWithPath: String(cString: created))
        executable = URL(
            fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                ?? CommandLine.arguments[0])
        self.keyBits = keyBits
        root = folder.appendingPathComponent("server")
        work = folder.appendingPathComponent("alice")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        environment = ProcessInfo.processInfo.environment
        // Throwaway secrets for a throwaway CA; they never leave this folder.
        environment["SFTS_PKI_PASSPHRASE"] = "demo passphrase " + SecureRandom.bytes(8).hexString
        environment["SFTS_PASSWORD"] = "demo password " + SecureRandom.bytes(8).hexString
        environment["SFTS_HOME"] = folder.appendingPathComponent("alice-home").path
        environment["SFTS_HOST_CODE"] = nil
        environment["SFTS_NEW_PASSWORD"] = nil
    }

    func run() throws {
        Console.out("sfts demo in \(folder.path)")
        Console.out("Secrets come from SFTS_PKI_PASSPHRASE, SFTS_PASSWORD and SFTS_HOST_CODE, never from argv.")

        try runStep(
            "The operator creates the CA, the server certificate and the host code",
            [
                "ca", "init", "--root", root.path, "--host", "localhost", "--host", "127.0.0.1", "--key-bits",
                String(keyBits),
            ])
        environment["SFTS_HOST_CODE"] = try String(
            contentsOf: root.appendingPathComponent("certificates/host_code"), encoding: .utf8
        )
        .trimmingCharacters(in: .whitespacesAndNewlines)

        let filePort = try freePort()
        var enrollmentPort = try freePort()
        while enrollmentPort == filePort {
            enrollmentPort = try freePort()
        }
        try startServer(filePort: filePort, enrollmentPort: enrollmentPort)

        try runStep(
            "alice enrolls: key, CSR, host code proof, password verifier",
            [
                "enroll", "--server", "localhost", "--user", "alice", "--port", String(filePort), "--csr-port",
                String(enrollmentPort), "--key-bits", String(keyBits),
            ])
        try runStep(
            "The operator lets alice upload (new users may only list and download)",
            ["user", "role", "alice", "user", "--root", root.path])

        let original = work.appendingPathComponent("report.bin")
        let bytes = Data(SecureRandom.bytes(1024 * 1024))
        try bytes.write(to: original)
        Console.out("\nalice's working folder now holds report.bin, 1 MiB of random bytes.")

        try runStep("alice uploads it: hashed, signed, checked by the server", ["put", "report.bin"])
        try runStep("alice lists the files with size, uploader and SHA-256", ["ls", "-l"])
        let copy = work.appendingPathComponent("report-copy.bin")

        try runStep(
            "alice downloads it: the server signs the record, the client checks it",
            ["get", "report.bin", "report-copy.bin"])

        step += 1
        Console.out("\n==> \(step). Verify the download byte for byte")
        let downloaded = try Data(contentsOf: copy)
        guard downloaded == bytes else {
            throw DemoFailure(message: "the downloaded file differs from the original", code: .integrity)
        }
        Console.out("    identical, SHA-256 \(Digest.sha256(Array(downloaded)).hexString)")

        try runStep("alice removes it", ["rm", "report.bin"])
        try runStep("The listing is empty again", ["ls"])
        stopServer()
    }

    /// Runs this binary with `arguments`, printing the command line and its output.
    private func runStep(_ title: String, _ arguments: [String]) throws {
        step += 1
        Console.out("\n==> \(step). \(title)")
        Console.out("$ sfts " + arguments.map(quote).joined(separator: " "))
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = work
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
            Console.out("    " + line)
        }
        guard process.terminationStatus == 0 else {
            throw DemoFailure(
                message: "'sfts \(arguments.first ?? "")' exited with \(process.terminationStatus)",
                code: ExitCode(rawValue: process.terminationStatus) ?? .failure)
        }
    }

    private func startServer(filePort: UInt16, enrollmentPort: UInt16) throws {
        step += 1
        let arguments = [
            "serve", "--root", root.path, "--listen", "127.0.0.1", "--port", String(filePort), "--csr-port",
            String(enrollmentPort),
        ]
        Console.out("\n==> \(step). The operator starts the server on loopback (in the background)")
        Console.out("$ sfts " + arguments.map(quote).joined(separator: " ") + " &")
        let log = folder.appendingPathComponent("serve-output.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        process.standardOutput = try FileHandle(forWritingTo: log)
        process.standardError = try FileHandle(forWritingTo: log)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        server = process

        let deadline = Date() + 30
        while Date() < deadline {
            guard process.isRunning else {
                let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
                throw DemoFailure(message: "the server exited: \(text)", code: .failure)
            }
            let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            if isListening(filePort) && isListening(enrollmentPort) && text.contains("server.started") {
                // Show what the server itself reported, its start-up log line.
                for line in text.split(separator: "\n") {
                    Console.out("    " + line)
                }
                return
            }
            usleep(20_000)
        }
        throw DemoFailure(message: "the server did not start listening within 30 s", code: .network)
    }

    func stopServer() {
        guard let process = server else { return }
        server = nil
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
        }
        process.waitUntilExit()
    }

    private func quote(_ argument: String) -> String {
        let plain = argument.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || "-_./:=,".unicodeScalars.contains($0)
        }
        return plain && !argument.isEmpty ? argument : "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Asks the kernel for a free loopback port.
    private func freePort() throws -> UInt16 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw DemoFailure(message: "socket failed", code: .network) }
        defer { close(descriptor) }
        var address = loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard ok else { throw DemoFailure(message: "no free loopback port", code: .network) }
        return UInt16(bigEndian: address.sin_port)
    }

    private func isListening(_ port: UInt16) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = loopback(port: port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    private func loopback(port: UInt16) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
