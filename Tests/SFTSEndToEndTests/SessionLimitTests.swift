import Foundation
import SFTSTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A `sfts shell` fed through a pipe, whose output the test reads as it comes. A thread of
/// its own reads the output with plain read(2) until the shell closes it.
private final class PipedShell {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let lock = NSLock()
    private var received = ""
    private var reader: Thread?

    init(_ client: TestClient, arguments: [String] = [], environment: [String: String] = [:]) throws {
        process.executableURL = SFTSBinary.url
        process.arguments = ["shell"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(client.environment) { $1 }
            .merging(environment) { $1 }
        process.currentDirectoryURL = client.workFolder
        process.standardInput = input
        process.standardOutput = output
        process.standardError = output
        try launchSerially(process)
        let descriptor = output.fileHandleForReading.fileDescriptor
        let reader = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = read(descriptor, &buffer, buffer.count)
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { return }
                lock.lock()
                received += String(decoding: buffer[..<count], as: UTF8.self)
                lock.unlock()
            }
        }
        self.reader = reader
        reader.start()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    func send(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    /// Waits up to `seconds` for `marker` in the output.
    func waitFor(_ marker: String, seconds: TimeInterval = 30) -> Bool {
        waitUntil(seconds) { self.text.contains(marker) }
    }

    /// Closes the input and returns the exit status, killing the shell after `seconds`.
    func finish(seconds: TimeInterval = 30) -> Int32 {
        try? input.fileHandleForWriting.close()
        guard waitUntil(seconds, { !process.isRunning }) else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return -1
        }
        return process.terminationStatus
    }
}

/// Tests what may end while a connection stays open: the session ticket, the password it was
/// issued under, or the client certificate. The server checks each before every request, so a
/// long shell cannot outlive them.
@Suite struct SessionLimitTests {
    /// Enrolls alice with the role `user`.
    static func enrolled(_ server: TestServer) throws -> TestClient {
        try ScriptingTests.uploader(server)
    }

    /// Runs `sfts ca revoke` with the PKI passphrase against the server's state root.
    static func revoke(_ server: TestServer, _ arguments: [String]) throws -> ProcessResult {
        try ProcessRunner.run(
            SFTSBinary.url, ["ca", "revoke"] + arguments + ["--root", server.root.path],
            environment: ["SFTS_PKI_PASSPHRASE": TestSecrets.pkiPassphrase])
    }

    @Test func passwordChangeEndsATicketShell() throws {
        let server = try TestServer()
        let alice = try Self.enrolled(server)
        let login = try alice.run(["login", "--ttl", "10m"])
        try #require(login.status == 0, "\(login)")
        _ = try randomFile(alice.work("first.txt"), bytes: 10)
        #expect(try alice.run(["put", "first.txt"]).status == 0)

        let shell = try PipedShell(alice, environment: ["SFTS_PASSWORD": ""])
        shell.send("ls")
        #expect(shell.waitFor("first.txt"), "\(shell.text)")
        #expect(server.log.contains("method=session"))

        // Another client of the same user changes the password with the password.
        let other = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        try? FileManager.default.removeItem(at: other.home)
        try FileManager.default.copyItem(at: alice.home, to: other.home)
        try? FileManager.default.removeItem(at: other.profileFile("session.json"))
        let change = try other.run(
            ["passwd"], extraEnvironment: ["SFTS_NEW_PASSWORD": "a different long passphrase now"])
        try #require(change.status == 0, "\(change)")

        shell.send("ls")
        let status = shell.finish()
        #expect(status == 3, "\(shell.text)")
        #expect(shell.text.contains("log in with the password"), "\(shell.text)")
        #expect(server.log.contains("session.ticket-ended"))
        // The shell deletes the ended session, so the next command needs the password.
        #expect(!FileManager.default.fileExists(atPath: alice.profileFile("session.json").path))
        #expect(!FileManager.default.fileExists(atPath: alice.profileFile("session_key.pem").path))
        #expect(server.isRunning)
    }

    /// A certificate that expires while its connection is open ends the connection at the
    /// next request; it cannot renew there either.
    @Test func expiredCertificateEndsAnOpenShell() throws {
        let server = try TestServer(extraArguments: ["--cert-lifetime", "15s"])
        let alice = try Self.enrolled(server)
        // A ticket login, which never renews on its own, keeps the old certificate in use.
        let login = try alice.run(["login", "--ttl", "10m"])
        try #require(login.status == 0, "\(login)")
        let shell = try PipedShell(alice, environment: ["SFTS_PASSWORD": ""])
        shell.send("ls")
        #expect(shell.waitFor("sfts> ls"), "\(shell.text)")

        let certificate = alice.profileFile("client_certificate.pem").path
        let openssl = try #require(ProcessRunner.which("openssl"))
        let expired = waitUntil(40) {
            (try? ProcessRunner.run(openssl, ["x509", "-in", certificate, "-noout", "-checkend", "0"]).status) == 1
        }
        try #require(expired)
        shell.send("ls")
        let status = shell.finish()
        #expect(status == 3, "\(shell.text)")
        #expect(shell.text.contains("certificate expired"), "\(shell.text)")
        #expect(server.log.contains("session.certificate-expired"))
    }

    /// After a renewal the replaced certificate still logs in until the renewed one does. So
    /// revoking the user must shut out both, and a copy of the profile made before the renewal
    /// must neither get in nor renew to a fresh certificate.
    @Test func revokingAUserCoversTheRenewedCertificate() throws {
        let server = try TestServer()
        let alice = try Self.enrolled(server)
        let thief = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        try FileManager.default.copyItem(at: alice.home, to: thief.home)
        let renewed = try alice.run(["renew"])
        try #require(renewed.status == 0, "\(renewed)")

        let revoke = try Self.revoke(server, ["alice", "--reason", "keyCompromise"])
        #expect(revoke.status == 0, "\(revoke)")
        #expect(revoke.standardOutput.components(separatedBy: "revoked certificate").count == 3, "\(revoke)")

        let owner = try alice.run(["ls"])
        #expect(owner.status == 3, "\(owner)")
        let copy = try thief.run(["ls"])
        #expect(copy.status == 3, "\(copy)")
        let renewAgain = try thief.run(["renew"])
        #expect(renewAgain.status == 3, "\(renewAgain)")
        let listing = try server.admin(["ca", "list"]).standardOutput
        let aliceRows = listing.split(separator: "\n").filter { $0.contains(" alice ") }
        #expect(aliceRows.count == 2, "\(listing)")
        #expect(aliceRows.allSatisfy { $0.contains("revoked") }, "\(listing)")
    }

    /// Simulates a `ca revoke` killed after it wrote revoked.json but before the CRL. The
    /// server notices the changed revoked.json, writes the CRL itself, and rejects the certificate.
    @Test func revocationIndexAloneTakesEffect() throws {
        let server = try TestServer()
        let alice = try Self.enrolled(server)
        #expect(try alice.run(["ls"]).status == 0)
        let users = try JSONSerialization.jsonObject(with: Data(contentsOf: server.file("users.json")))
        let serial = try #require(
            ((users as? [String: Any])?["alice"] as? [String: Any])?["certificateSerial"] as? String)
        let indexURL = server.file("certificates/revoked.json")
        var index = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: indexURL)) as? [String: Any])
        var revoked = index["revoked"] as? [String: Any] ?? [:]
        revoked[serial] = ["name": "alice", "revokedAt": "2026-01-01T00:00:00.000Z", "reason": "keyCompromise"]
        index["revoked"] = revoked
        try JSONSerialization.data(withJSONObject: index).write(to: indexURL)

        let refused = try alice.run(["ls"])
        #expect(refused.status == 3, "\(refused)")
        #expect(server.log.contains("crl.rewritten"))
    }

    /// Revoking the renewed certificate by its serial shuts out the one it replaced too.
    @Test func revokingTheCurrentSerialCoversTheRenewedOne() throws {
        let server = try TestServer()
        let alice = try Self.enrolled(server)
        let thief = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        try FileManager.default.copyItem(at: alice.home, to: thief.home)
        try #require(try alice.run(["renew"]).status == 0)
        let users = try JSONSerialization.jsonObject(with: Data(contentsOf: server.file("users.json")))
        let serial = try #require(
            ((users as? [String: Any])?["alice"] as? [String: Any])?["certificateSerial"] as? String)

        let revoke = try Self.revoke(server, [serial])
        #expect(revoke.status == 0, "\(revoke)")
        let copy = try thief.run(["ls"])
        #expect(copy.status == 3, "\(copy)")
        let renewAgain = try thief.run(["renew"])
        #expect(renewAgain.status == 3, "\(renewAgain)")
    }

    /// revoked.json restored from a backup taken before a revocation: the CRL still lists the
    /// serial, the next CRL write puts it back, and the certificate never logs in again.
    @Test func restoredRevocationIndexDoesNotUnrevoke() throws {
        let server = try TestServer()
        let alice = try Self.enrolled(server)
        let bob = try TestClient(user: "bob", password: TestSecrets.bobPassword)
        try #require(try bob.enroll(server).status == 0)
        let indexURL = server.file("certificates/revoked.json")
        let backup = try Data(contentsOf: indexURL)
        let revokeBob = try Self.revoke(server, ["bob"])
        try #require(revokeBob.status == 0, "\(revokeBob)")
        try backup.write(to: indexURL)

        let listing = try server.admin(["ca", "list"]).standardOutput
        #expect(listing.contains("in crl.pem, missing from revoked.json"), "\(listing)")
        let revokeAlice = try Self.revoke(server, ["alice"])
        #expect(revokeAlice.status == 0, "\(revokeAlice)")
        let bobAfter = try bob.run(["ls"])
        #expect(bobAfter.status == 3, "\(bobAfter)")
        let index = try String(contentsOf: indexURL, encoding: .utf8)
        #expect(index.contains("\"bob\""), "\(index)")
    }
}
