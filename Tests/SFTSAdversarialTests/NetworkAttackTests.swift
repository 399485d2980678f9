import Foundation
import SFTSCrypto
import SFTSProtocol
import SFTSTLS
import SFTSTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Attacks from the network side: password guessing from one address, connection floods,
/// trickling clients, and racing uploads.
@Suite(.serialized)
final class NetworkAttackTests {
    /// Logs in as alice with a wrong password from `address` and returns the error body.
    func wrongLogin(_ fixture: HostileFixture, from address: String) throws -> ErrorBody? {
        let hostile = try HostileClient.fileService(fixture.server, as: fixture.alice, from: address)
        let reply = try hostile.login(user: "alice", password: "a wrong password for sure")
        return reply.type == .error ? try reply.body(ErrorBody.self) : nil
    }

    /// Logs in correctly from `address`; returns the reply type name or the error code.
    func rightLogin(_ fixture: HostileFixture, from address: String) throws -> String {
        let hostile = try HostileClient.fileService(fixture.server, as: fixture.alice, from: address)
        let reply = try hostile.login(user: "alice", password: fixture.alice.password)
        if reply.type == .error {
            return try reply.body(ErrorBody.self).code.rawValue
        }
        return reply.typeName
    }

    func blockedKeys(_ fixture: HostileFixture) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: fixture.server.file("blocked_ip.json").path) else {
            return []
        }
        let table = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        return table.keys.sorted()
    }

    @Test(arguments: ["127.0.0.1", "::ffff:127.0.0.1"])
    func wrongPasswordsBlockOneAddressOnly(listenAddress: String) throws {
        let fixture = try HostileFixture(listenAddress: listenAddress)
        for _ in 0..<3 {
            #expect(try wrongLogin(fixture, from: "127.0.0.3")?.code == .authenticationFailed)
        }
        // An IPv4-mapped peer counts as its IPv4 address.
        #expect(try blockedKeys(fixture) == ["127.0.0.3"])
        #expect(try rightLogin(fixture, from: "127.0.0.3") == WireErrorCode.blocked.rawValue)
        #expect(try rightLogin(fixture, from: "127.0.0.4") == MessageType.loginAccepted.rawValue)
        #expect(try fixture.serverStillServes())

        let listed = try fixture.server.admin(["block", "list"])
        #expect(listed.standardOutput.contains("127.0.0.3"))
        let lifted = try fixture.server.admin(["block", "lift", "127.0.0.3"])
        #expect(lifted.status == 0, "\(lifted)")
        #expect(try rightLogin(fixture, from: "127.0.0.3") == MessageType.loginAccepted.rawValue)
    }

    @Test func blockExpiresByItself() throws {
        let fixture = try HostileFixture(serverArguments: ["--block-duration", "2"])
        for _ in 0..<3 {
            _ = try wrongLogin(fixture, from: "127.0.0.5")
        }
        #expect(try rightLogin(fixture, from: "127.0.0.5") == WireErrorCode.blocked.rawValue)
        let expired = try waitUntil(15) {
            try rightLogin(fixture, from: "127.0.0.5") == MessageType.loginAccepted.rawValue
        }
        #expect(expired)
    }

    @Test func failedEnrollmentsCountToo() throws {
        let fixture = try HostileFixture()
        for _ in 0..<3 {
            let hostile = try HostileClient.enrollment(fixture.server, from: "127.0.0.6")
            try hostile.send(
                "enroll-start", EnrollStart(user: "mallory", nonce: Data(SecureRandom.bytes(32)).base64EncodedString()))
            _ = try hostile.receive()
            try hostile.send("enroll-proof", EnrollProof(proof: Data(SecureRandom.bytes(32)).base64EncodedString()))
            #expect(try hostile.expectError().code == .authenticationFailed)
        }
        #expect(try rightLogin(fixture, from: "127.0.0.6") == WireErrorCode.blocked.rawValue)
    }

    @Test func commandBeforeLoginCountsAsFailure() throws {
        let fixture = try HostileFixture()
        let hostile = try HostileClient.fileService(fixture.server, as: fixture.alice, from: "127.0.0.7")
        try hostile.send("remove", PathRequest(name: "x"))
        #expect(try hostile.expectError().code == .invalidRequest)
        let failures = try String(contentsOf: fixture.server.file("auth_failures.json"), encoding: .utf8)
        #expect(failures.contains("127.0.0.7"))
    }

    @Test func userNameWithNewlineIsOneLogLine() throws {
        let fixture = try HostileFixture()
        let hostile = try HostileClient.fileService(fixture.server, as: fixture.alice)
        let forged = "eve\n2026-01-01T00:00:00.000Z INFO login.succeeded user=admin"
        let reply = try hostile.login(user: forged, password: "whatever it is")
        #expect(reply.type == .error)
        let log = try String(contentsOf: fixture.server.file("logs/server.log"), encoding: .utf8)
        let lines = log.split(separator: "\n")
        // The failed login is one event on one line, and no line is the forged one.
        #expect(lines.filter { $0.contains(" login.failed ") }.count == 1)
        #expect(!lines.contains { $0.hasPrefix("2026-01-01T00:00:00.000Z") })
        let today = String(Timestamp.format(Date()).prefix(10))
        #expect(lines.allSatisfy { $0.hasPrefix(today) })
        #expect(log.contains(#"user="eve\n2026-01-01T00:00:00.000Z INFO login.succeeded user=admin""#))
    }

    @Test func floodAndTrickleDoNotStopLegitimateUsers() throws {
        let fixture = try HostileFixture(serverArguments: ["--handshake-timeout", "30", "--idle-timeout", "4"])
        // 200 silent TCP connections from four other loopback addresses, under the per-address limit.
        var silent: [Int32] = []
        defer {
            for descriptor in silent { close(descriptor) }
        }
        for index in 0..<200 {
            silent.append(
                try TCPClient.connect(
                    host: "127.0.0.1", port: fixture.server.filePort, timeout: 5,
                    sourceAddress: "127.0.0.\(10 + index % 4)"))
        }
        // A logged-in client that starts an upload and then sends one byte a second.
        let trickler = try HostileClient.fileService(fixture.server, as: fixture.alice, from: "127.0.0.20")
        #expect(try trickler.login(user: "alice", password: fixture.alice.password).type == .loginAccepted)
        try trickler.send("put", PutRequest(name: "trickle.bin", size: 1_000_000, force: false))
        #expect(try trickler.receive().type == .putReady)
        let trickle = Thread {
            for _ in 0..<20 {
                if (try? trickler.sendBytes([0x41])) == nil { return }
                sleep(1)
            }
        }
        trickle.start()

        let started = Date()
        let listing = try fixture.alice.run(["ls"])
        #expect(listing.status == 0, "\(listing)")
        try Data("legitimate".utf8).write(to: fixture.alice.work("ok.txt"))
        let put = try fixture.alice.run(["put", "ok.txt"])
        #expect(put.status == 0, "\(put)")
        // Generous: only a server stuck behind the flood would take this long.
        #expect(Date().timeIntervalSince(started) < 20)

        // The server cuts the trickler once 4 s pass with under 64 KiB of body.
        let cut = waitUntil(15) { fixture.server.log.contains("connection.timed-out") }
        #expect(cut)
        #expect(try waitUntil(5) { try fixture.storedNames() == ["ok.txt"] })
    }

    @Test func concurrentSameNameUploadsNeverMix() throws {
        let fixture = try HostileFixture()
        let first = Data(repeating: 0x31, count: 256 * 1024)
        let second = Data(repeating: 0x32, count: 256 * 1024)
        try first.write(to: fixture.alice.work("one.bin"))
        try second.write(to: fixture.alice.work("two.bin"))
        for round in 0..<20 {
            let name = "race-\(round).bin"
            let results = ResultBox()
            let group = DispatchGroup()
            for local in ["one.bin", "two.bin"] {
                group.enter()
                DispatchQueue.global().async {
                    results.append(try? fixture.alice.run(["put", local, name]))
                    group.leave()
                }
            }
            group.wait()
            let statuses = results.statuses.sorted()
            #expect(statuses == [0, 6], "round \(round): \(results.all)")
            let stored = try Data(contentsOf: fixture.server.file("directory/\(name)"))
            #expect(stored == first || stored == second, "round \(round) mixed the uploads")
        }
        #expect(try fixture.storedNames().allSatisfy { !$0.hasPrefix(".sfts-") })
    }

    @Test func killedUploadKeepsPreviousFile() throws {
        let fixture = try HostileFixture()
        let original = Data("the original contents\n".utf8)
        try original.write(to: fixture.alice.work("doc.txt"))
        #expect(try fixture.alice.run(["put", "doc.txt"]).status == 0)

        // Replace it with a large file over a client that dies mid-body.
        let hostile = try HostileClient.fileService(fixture.server, as: fixture.alice)
        #expect(try hostile.login(user: "alice", password: fixture.alice.password).type == .loginAccepted)
        try hostile.send("put", PutRequest(name: "doc.txt", size: 50_000_000, force: true))
        #expect(try hostile.receive().type == .putReady)
        try hostile.sendBytes([UInt8](repeating: 0x5A, count: 4_000_000))
        let temporaryAppeared = try waitUntil(10) {
            try fixture.storedNames().contains { $0.hasPrefix(".sfts-tmp-") }
        }
        #expect(temporaryAppeared)
        hostile.connection.abort()

        #expect(try waitUntil(10) { try fixture.storedNames() == ["doc.txt"] }, "\(fixture.server.log)")
        #expect(try Data(contentsOf: fixture.server.file("directory/doc.txt")) == original)
        let listing = try fixture.alice.run(["ls"])
        #expect(listing.status == 0, "\(listing)\n\(fixture.server.log)")
    }

    @Test func symlinkedFolderRefusedForEveryCommand() throws {
        let fixture = try HostileFixture()
        let outside = fixture.server.folder.path("outside")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        try Data("secret".utf8).write(to: outside.appendingPathComponent("secret.txt"))
        try FileManager.default.createSymbolicLink(
            at: fixture.server.file("directory/escape"), withDestinationURL: outside)
        try Data("x".utf8).write(to: fixture.alice.work("x.txt"))

        let attempts: [[String]] = [
            ["ls", "escape"], ["get", "escape/secret.txt", "stolen.txt"], ["put", "x.txt", "escape/planted.txt"],
            ["rm", "escape/secret.txt"], ["get", "escape", "stolen2.txt"],
        ]
        for attempt in attempts {
            let result = try fixture.alice.run(attempt)
            #expect(result.status == 9, "\(attempt): \(result)")
            #expect(result.standardError.contains("symbolic link"), "\(attempt): \(result)")
        }
        #expect(try String(contentsOf: outside.appendingPathComponent("secret.txt"), encoding: .utf8) == "secret")
        #expect(!FileManager.default.fileExists(atPath: outside.appendingPathComponent("planted.txt").path))
        #expect(!FileManager.default.fileExists(atPath: fixture.alice.work("stolen.txt").path))
        #expect(!(try fixture.alice.run(["ls"]).standardOutput.contains("escape")))
    }
}

/// Results collected from concurrent runs.
private final class ResultBox: @unchecked Sendable {
    private var results: [ProcessResult?] = []
    private let lock = NSLock()

    func append(_ result: ProcessResult?) {
        lock.lock()
        results.append(result)
        lock.unlock()
    }

    var all: [ProcessResult?] {
        lock.lock()
        defer { lock.unlock() }
        return results
    }

    var statuses: [Int32] { all.map { $0?.status ?? -1 } }
}
