import Foundation
import SFTSTestSupport
import Testing

/// The main job against the real binary: a server from `sfts ca init` and `sfts serve` on
/// loopback, two users enrolled from separate profiles, and one-shot commands.
@Suite(.serialized)
struct MainJobTests {
    @Test func fullJobEndToEnd() throws {
        let server = try TestServer()
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        let bob = try TestClient(user: "bob", password: TestSecrets.bobPassword)

        let aliceEnroll = try alice.enroll(server)
        try #require(aliceEnroll.status == 0, "\(aliceEnroll)")
        let bobEnroll = try bob.enroll(server)
        try #require(bobEnroll.status == 0, "\(bobEnroll)")
        #expect(bobEnroll.standardOutput.contains("Enrolled as bob"))

        // New users are 'registered', which may list but not upload.
        let data = try randomFile(alice.work("data.bin"), bytes: 20 * 1024 * 1024)
        let denied = try bob.run(["put", alice.work("data.bin").path])
        #expect(denied.status == 4, "\(denied)")
        #expect(denied.standardError.contains("role 'registered' lacks the 'upload' permission"))
        #expect(try server.admin(["user", "list"]).standardOutput.contains("registered"))

        let promote = try server.admin(["user", "role", "alice", "user"])
        #expect(promote.status == 0, "\(promote)")

        let put = try alice.run(["put", "data.bin"])
        #expect(put.status == 0, "\(put)")
        #expect(put.standardOutput.contains(sha256Hex(data)))
        let stored = try Data(contentsOf: server.file("directory/data.bin"))
        #expect(stored == data)

        let nonASCII = "Grüße 日本 ünïcödé.txt"
        try Data("non-ASCII name\n".utf8).write(to: alice.work("local.txt"))
        let putName = try alice.run(["put", "local.txt", nonASCII])
        #expect(putName.status == 0, "\(putName)")

        let listing = try alice.run(["ls", "-l"])
        #expect(listing.status == 0, "\(listing)")
        #expect(listing.standardOutput.contains("data.bin"))
        #expect(listing.standardOutput.contains(nonASCII))
        #expect(listing.standardOutput.contains(sha256Hex(data)))
        #expect(listing.standardOutput.contains("alice"))

        // bob, still registered, may download what alice uploaded.
        let bobGet = try bob.run(["get", "data.bin", "copy.bin"])
        #expect(bobGet.status == 0, "\(bobGet)")
        #expect(try Data(contentsOf: bob.work("copy.bin")) == data)
        #expect(bobGet.standardOutput.contains("signed by CN=localhost"))

        let getName = try alice.run(["get", nonASCII, "fetched.txt"])
        #expect(getName.status == 0, "\(getName)")
        #expect(try String(contentsOf: alice.work("fetched.txt"), encoding: .utf8) == "non-ASCII name\n")

        let again = try alice.run(["put", "data.bin"])
        #expect(again.status == 6, "\(again)")
        let getExisting = try bob.run(["get", "data.bin", "copy.bin"])
        #expect(getExisting.status == 6, "\(getExisting)")

        let bobRemove = try bob.run(["rm", "data.bin"])
        #expect(bobRemove.status == 4, "\(bobRemove)")
        let remove = try alice.run(["rm", "data.bin"])
        #expect(remove.status == 0, "\(remove)")
        #expect(!FileManager.default.fileExists(atPath: server.file("directory/data.bin").path))
        let missing = try alice.run(["get", "data.bin", "gone.bin"])
        #expect(missing.status == 5, "\(missing)")
        #expect(!FileManager.default.fileExists(atPath: alice.work("gone.bin").path))
        let afterRemove = try alice.run(["ls"])
        #expect(!afterRemove.standardOutput.contains("data.bin"))
        #expect(afterRemove.standardOutput.contains(nonASCII))

        // passwd: the new password works and the old one no longer does.
        let newPassword = "copper meadow signal thistle four"
        let change = try alice.run(["passwd"], extraEnvironment: ["SFTS_NEW_PASSWORD": newPassword])
        #expect(change.status == 0, "\(change)")
        let oldFails = try alice.run(["ls"])
        #expect(oldFails.status == 3, "\(oldFails)")
        alice.password = newPassword
        let newWorks = try alice.run(["ls"])
        #expect(newWorks.status == 0, "\(newWorks)")

        let logText = try String(contentsOf: server.file("logs/server.log"), encoding: .utf8)
        #expect(logText.contains("enroll.completed"))
        #expect(logText.contains("access.denied"))
        #expect(!logText.contains(TestSecrets.alicePassword))
        #expect(!logText.contains(newPassword))
        let clientLog = try String(contentsOf: alice.home.appendingPathComponent("logs/client.log"), encoding: .utf8)
        #expect(clientLog.contains("command.succeeded"))
        #expect(!clientLog.contains(newPassword))
        #expect(server.stop() == 0)
    }
}

func randomFile(_ url: URL, bytes: Int) throws -> Data {
    var generator = SystemRandomNumberGenerator()
    var data = Data(count: bytes)
    data.withUnsafeMutableBytes { buffer in
        let words = buffer.bindMemory(to: UInt64.self)
        for index in words.indices {
            words[index] = generator.next()
        }
    }
    try data.write(to: url)
    return data
}

func sha256Hex(_ data: Data) -> String {
    let hasher = Process()
    hasher.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    hasher.arguments = ["dgst", "-sha256", "-r"]
    let input = Pipe()
    let output = Pipe()
    hasher.standardInput = input
    hasher.standardOutput = output
    try? launchSerially(hasher)
    let writer = Thread {
        input.fileHandleForWriting.write(data)
        try? input.fileHandleForWriting.close()
    }
    writer.start()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    hasher.waitUntilExit()
    return String(text.prefix(64))
}

/// A download stopped by a signal leaves neither the target nor its temporary file.
@Suite(.serialized)
struct InterruptedDownloadTests {
    @Test func interruptedGetLeavesNothing() throws {
        let server = try TestServer()
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        try #require(try alice.enroll(server).status == 0)
        // A sparse 2 GiB file costs no disk on the server and takes seconds to send.
        let big = server.file("directory/big.bin")
        #expect(FileManager.default.createFile(atPath: big.path, contents: nil))
        let handle = try FileHandle(forWritingTo: big)
        try handle.truncate(atOffset: 2 << 30)
        try handle.close()

        let process = Process()
        process.executableURL = SFTSBinary.url
        process.arguments = ["get", "big.bin", "copy.bin"]
        process.environment = ProcessInfo.processInfo.environment.merging(alice.environment) { $1 }
        process.currentDirectoryURL = alice.workFolder
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try launchSerially(process)
        defer {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }

        func partialFiles() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: alice.workFolder.path).filter {
                $0.contains(".sfts-part-")
            }
        }
        let started = Date()
        while try partialFiles().isEmpty && process.isRunning && Date().timeIntervalSince(started) < 60 {
            usleep(5_000)
        }
        try #require(process.isRunning, "the download ended before it could be interrupted")
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()

        #expect(process.terminationReason == .uncaughtSignal)
        #expect(try partialFiles().isEmpty)
        #expect(!FileManager.default.fileExists(atPath: alice.work("copy.bin").path))
    }
}
