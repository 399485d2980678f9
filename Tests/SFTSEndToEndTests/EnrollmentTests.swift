import Foundation
import SFTSTestSupport
import Testing

/// Enrollment through the real binary: the host code proof, the profile it leaves, and the
/// rule that a taken name cannot be enrolled again with the host code alone.
@Suite(.serialized)
final class EnrollmentTests {
    let server: TestServer

    init() throws {
        server = try TestServer()
    }

    @Test func wrongHostCodeRejected() throws {
        let mallory = try TestClient(user: "mallory", password: TestSecrets.bobPassword)
        let wrongCode = "0000-0000-0000-0000-0000-0000-0000-0000"
        let result = try mallory.run(
            [
                "enroll", "--server", "127.0.0.1", "--user", "mallory", "--port", String(server.filePort),
                "--csr-port", String(server.enrollmentPort), "--key-bits", "2048",
            ], extraEnvironment: ["SFTS_HOST_CODE": wrongCode])
        #expect(result.status == 3, "\(result)")
        #expect(result.standardError.contains("host code"))
        #expect(!FileManager.default.fileExists(atPath: mallory.home.appendingPathComponent("profiles/default").path))
        let users = try String(contentsOf: server.file("users.json"), encoding: .utf8)
        #expect(!users.contains("mallory"))
        #expect(server.log.contains("enroll.auth-failed"))
    }

    @Test func enrolledNameCannotBeTakenOver() throws {
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        try #require(try alice.enroll(server).status == 0)
        let usersBefore = try Data(contentsOf: server.file("users.json"))

        let impostor = try TestClient(user: "alice", password: TestSecrets.bobPassword)
        let result = try impostor.enroll(server)
        // The host code alone is not enough for an enrolled name: it takes alice's password.
        #expect(result.status == 3, "\(result)")
        #expect(result.standardError.contains("already enrolled"))
        #expect(result.standardError.contains("current password"))
        #expect(try Data(contentsOf: server.file("users.json")) == usersBefore)
        #expect(try alice.run(["ls"]).status == 0)
    }

    @Test func weakPasswordAndBadNameRejected() throws {
        let short = try TestClient(user: "carol", password: "too short")
        let shortResult = try short.enroll(server)
        #expect(shortResult.status == 9, "\(shortResult)")
        #expect(shortResult.standardError.contains("at least 15"))

        let blocked = try TestClient(user: "dave", password: "correcthorsebatterystaple")
        let blockedResult = try blocked.enroll(server)
        #expect(blockedResult.status == 9, "\(blockedResult)")
        #expect(blockedResult.standardError.contains("common or breached"))

        let badName = try TestClient(user: "Eve/..", password: TestSecrets.bobPassword)
        let badNameResult = try badName.enroll(server)
        #expect(badNameResult.status == 9, "\(badNameResult)")
        #expect(badNameResult.standardError.contains("invalid user name"))

        let users = try String(contentsOf: server.file("users.json"), encoding: .utf8)
        #expect(!users.contains("carol"))
        #expect(!users.contains("dave"))
    }

    @Test func profileFilesArePrivate() throws {
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        try #require(try alice.enroll(server).status == 0)
        for name in ["profile.json", "ca_certificate.pem", "client_certificate.pem", "client_key.pem"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: alice.profileFile(name).path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(name)")
        }
        let folder = try FileManager.default.attributesOfItem(
            atPath: alice.home.appendingPathComponent("profiles/default").path)
        #expect((folder[.posixPermissions] as? Int) == 0o700)
        let key = try String(contentsOf: alice.profileFile("client_key.pem"), encoding: .utf8)
        #expect(key.contains("BEGIN ENCRYPTED PRIVATE KEY"))
    }
}

/// Enrollment with the CA fingerprint pinned, the defence against another holder of the host
/// code posing as the server.
@Suite(.serialized)
final class FingerprintPinTests {
    @Test func wrongPinRefusedBeforeAnythingIsSent() throws {
        let server = try TestServer()
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        let wrongPin = Array(repeating: "AB", count: 32).joined(separator: ":")
        let result = try alice.run(
            [
                "enroll", "--server", "127.0.0.1", "--user", "alice", "--port", String(server.filePort),
                "--csr-port", String(server.enrollmentPort), "--key-bits", "2048", "--ca-fingerprint", wrongPin,
            ], extraEnvironment: ["SFTS_HOST_CODE": server.hostCode])
        #expect(result.status == 3, "\(result)")
        #expect(result.standardError.contains("does not match --ca-fingerprint"))
        #expect(!FileManager.default.fileExists(atPath: alice.home.appendingPathComponent("profiles/default").path))
        let users = try String(contentsOf: server.file("users.json"), encoding: .utf8)
        #expect(!users.contains("alice"))
    }

    @Test func rightPinEnrolls() throws {
        let server = try TestServer()
        let alice = try TestClient(user: "alice", password: TestSecrets.alicePassword)
        let caInit = try String(contentsOf: server.file("certificates/ca_certificate.pem"), encoding: .utf8)
        #expect(caInit.contains("BEGIN CERTIFICATE"))
        let fingerprint = try ProcessRunner.run(
            try #require(ProcessRunner.which("openssl")),
            ["x509", "-in", server.file("certificates/ca_certificate.pem").path, "-noout", "-fingerprint", "-sha256"])
        let pin = try #require(fingerprint.standardOutput.split(separator: "=").last).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let result = try alice.run(
            [
                "enroll", "--server", "127.0.0.1", "--user", "alice", "--port", String(server.filePort),
                "--csr-port", String(server.enrollmentPort), "--key-bits", "2048", "--ca-fingerprint",
                pin.lowercased(),
            ], extraEnvironment: ["SFTS_HOST_CODE": server.hostCode])
        #expect(result.status == 0, "\(result)")
        #expect(!result.standardOutput.contains("Compare it with"))
    }
}
