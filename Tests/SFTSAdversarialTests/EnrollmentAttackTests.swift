import Foundation
import SFTSCrypto
import SFTSProtocol
import SFTSTLS
import SFTSTestSupport
import Testing

/// Hostile enrollments against the real server: each is rejected and leaves users.json and
/// the issued certificates as they were.
@Suite(.serialized)
final class EnrollmentAttackTests {
    let server: TestServer

    init() throws {
        server = try TestServer()
    }

    /// Runs the host code exchange for `user` and returns the client once the server has
    /// proved itself, ready for the enroll-request.
    func provenClient(user: String) throws -> HostileClient {
        let hostile = try HostileClient.enrollment(server)
        let nonce = Data(SecureRandom.bytes(32)).base64EncodedString()
        try hostile.send("enroll-start", EnrollStart(user: user, nonce: nonce))
        let challenge = try hostile.receive().expect(.enrollChallenge, EnrollChallenge.self)
        let key = Array(HostCode.normalize(server.hostCode)!.utf8)
        let proof = Digest.hmacSHA256(
            key: key,
            data: SignedRecord.enrollment(
                role: "client", user: user, clientNonce: nonce, serverNonce: challenge.nonce,
                channelBinding: try hostile.connection.channelBinding(), caFingerprint: []))
        try hostile.send("enroll-proof", EnrollProof(proof: Data(proof).base64EncodedString()))
        _ = try hostile.receive().expect(.enrollAccepted, EnrollAccepted.self)
        return hostile
    }

    func stateSnapshot() throws -> (users: Data?, issued: [String]) {
        (
            FileManager.default.contents(atPath: server.file("users.json").path),
            try FileManager.default.contentsOfDirectory(atPath: server.file("certificates/issued").path).sorted()
        )
    }

    @Test func csrForAnotherNameRejected() throws {
        let before = try stateSnapshot()
        let hostile = try provenClient(user: "alice")
        let key = try PrivateKey.generateRSA(bits: 2048)
        let csr = try CertificateSigningRequest.create(commonName: "admin", key: key)
        try hostile.send("enroll-request", EnrollRequest(csr: csr.pem, password: TestSecrets.alicePassword))
        let error = try hostile.expectError()
        #expect(error.code == .policyRejected)
        #expect(error.message.contains("common name"))
        let after = try stateSnapshot()
        #expect(after.users == before.users)
        #expect(after.issued == before.issued)
    }

    @Test func garbageCSRRejected() throws {
        let hostile = try provenClient(user: "alice")
        try hostile.send("enroll-request", EnrollRequest(csr: "not a CSR", password: TestSecrets.alicePassword))
        let error = try hostile.expectError()
        #expect(error.code == .invalidRequest)
        #expect(error.message.contains("invalid CSR"))
    }

    @Test func weakPasswordRejectedByServer() throws {
        let before = try stateSnapshot()
        let hostile = try provenClient(user: "alice")
        let key = try PrivateKey.generateRSA(bits: 2048)
        let csr = try CertificateSigningRequest.create(commonName: "alice", key: key)
        try hostile.send("enroll-request", EnrollRequest(csr: csr.pem, password: "short"))
        let error = try hostile.expectError()
        #expect(error.code == .policyRejected)
        #expect(error.message.contains("at least 15"))
        #expect(try stateSnapshot().issued == before.issued)
    }

    @Test func invalidUserNameRejectedByServer() throws {
        let hostile = try HostileClient.enrollment(server)
        try hostile.send(
            "enroll-start", EnrollStart(user: "../root", nonce: Data(SecureRandom.bytes(32)).base64EncodedString()))
        let error = try hostile.expectError()
        #expect(error.code == .policyRejected)
        #expect(error.message.contains("invalid user name"))
    }

    @Test func proofFromAnotherConnectionRejected() throws {
        // A proof computed for a different channel binding, as a relay would forward it.
        let hostile = try HostileClient.enrollment(server)
        let nonce = Data(SecureRandom.bytes(32)).base64EncodedString()
        try hostile.send("enroll-start", EnrollStart(user: "alice", nonce: nonce))
        let challenge = try hostile.receive().expect(.enrollChallenge, EnrollChallenge.self)
        let proof = Digest.hmacSHA256(
            key: Array(HostCode.normalize(server.hostCode)!.utf8),
            data: SignedRecord.enrollment(
                role: "client", user: "alice", clientNonce: nonce, serverNonce: challenge.nonce,
                channelBinding: [UInt8](repeating: 0, count: 32), caFingerprint: []))
        try hostile.send("enroll-proof", EnrollProof(proof: Data(proof).base64EncodedString()))
        let error = try hostile.expectError()
        #expect(error.code == .authenticationFailed)
        #expect(try stateSnapshot().users.map { String(decoding: $0, as: UTF8.self).contains("alice") } == false)
    }

    @Test func requestBeforeProofRejected() throws {
        let before = try stateSnapshot()
        let hostile = try HostileClient.enrollment(server)
        let key = try PrivateKey.generateRSA(bits: 2048)
        let csr = try CertificateSigningRequest.create(commonName: "alice", key: key)
        try hostile.send("enroll-request", EnrollRequest(csr: csr.pem, password: TestSecrets.alicePassword))
        let error = try hostile.expectError()
        #expect(error.code == .invalidRequest)
        #expect(try stateSnapshot().issued == before.issued)
    }
}

/// Tokens and expired certificates against the real server, bypassing the client's own checks.
@Suite(.serialized)
final class TokenAttackTests {
    @Test func tokenForAnotherUserRejectedByServer() throws {
        let server = try TestServer()
        let issued = try server.admin(["ca", "token", "bob"])
        let token = try #require(EnrollmentToken.parse(issued.standardOutput))
        let hostile = try HostileClient.enrollment(server)
        try hostile.send(
            "enroll-start",
            EnrollStart(user: "carol", nonce: Data(SecureRandom.bytes(32)).base64EncodedString(), token: token.id))
        let error = try hostile.expectError()
        #expect(error.code == .authenticationFailed)
        #expect(error.message.contains("token"))
        let tokens = try String(contentsOf: server.file("tokens.json"), encoding: .utf8)
        #expect(!tokens.contains("usedAt"))
    }

    @Test func expiredCertificateRejectedAtHandshake() throws {
        let fixture = try HostileFixture(serverArguments: ["--cert-lifetime", "5s"])
        let certificate = try Certificate(contentsOf: fixture.bob.profileFile("client_certificate.pem"))
        #expect(waitUntil(20) { certificate.notAfter < Date() })
        #expect {
            let hostile = try HostileClient.fileService(fixture.server, as: fixture.bob)
            _ = try hostile.login(user: "bob", password: fixture.bob.password)
        } throws: { error in
            if case TLSError.certificateRejectedByPeer(let reason) = error { return reason.contains("expired") }
            return false
        }
    }
}
