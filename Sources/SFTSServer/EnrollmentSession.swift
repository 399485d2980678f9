import Foundation
import SFTSCrypto
import SFTSProtocol
import SFTSTLS

/// One enrollment connection: mutual host code proofs bound to the TLS channel, then the CSR
/// and the password, then the signed certificate.
///
/// The client proves the host code first, so nobody without it learns anything from the
/// server but a nonce. The server's proof covers the CA certificate it sends, which is how the
/// client comes to trust a CA it has never seen.
final class EnrollmentSession: Session {
    /// Nonces are 16 to 64 random bytes, base64.
    static let nonceBytes = 32

    /// Set once the client has proved the host code; failures before that count against its
    /// address.
    private var proofVerified = false

    init(services: ServerServices, connection: TLSConnection, peer: PeerInfo) {
        super.init(services: services, connection: connection, peer: peer, service: "enrollment")
    }

    func run() {
        guard handshake() else { return }
        var requestID = "-"
        do {
            try enroll(requestID: &requestID)
            logClosed()
        } catch let failure as ServiceFailure {
            if !proofVerified {
                recordAuthenticationFailure(failure)
            }
            _ = report(failure, requestID: requestID, command: "enroll")
            logClosed()
        } catch {
            logClosed(error)
        }
    }

    private func enroll(requestID: inout String) throws {
        let (startFrame, start) = try expectRequest(.enrollStart, EnrollStart.self)
        requestID = startFrame.id
        if let problem = UserName.problem(with: start.user) {
            throw ServiceFailure(.policyRejected, "invalid user name: \(problem)", closesConnection: true)
        }
        guard Session.isValidNonce(start.nonce) else {
            throw ServiceFailure(.invalidRequest, "invalid client nonce", closesConnection: true)
        }
        let serverNonce = Data(SecureRandom.bytes(EnrollmentSession.nonceBytes)).base64EncodedString()
        let channelBinding: [UInt8]
        do {
            channelBinding = try connection.channelBinding()
        } catch {
            throw ServiceFailure(.invalidRequest, String(describing: error), closesConnection: true)
        }
        try channel.send(.enrollChallenge, id: requestID, body: EnrollChallenge(nonce: serverNonce))

        let (_, proof) = try expectRequest(.enrollProof, EnrollProof.self)
        let key = Array(services.pki.hostCode.utf8)
        let expected = Digest.hmacSHA256(
            key: key,
            data: SignedRecord.enrollment(
                role: "client", user: start.user, clientNonce: start.nonce, serverNonce: serverNonce,
                channelBinding: channelBinding, caFingerprint: []))
        guard let received = Data(base64Encoded: proof.proof),
            Digest.constantTimeEqual(Array(received), expected)
        else {
            logEvent(.warning, "enroll.auth-failed", [("user", start.user), ("reason", "wrong host code")])
            throw ServiceFailure(
                .authenticationFailed,
                "enrollment refused: the host code proof is wrong; check the code with the "
                    + "server operator", closesConnection: true)
        }
        proofVerified = true

        if try services.users.user(named: start.user) != nil {
            logEvent(.warning, "enroll.rejected", [("user", start.user), ("reason", "user exists")])
            throw ServiceFailure(
                .alreadyExists, String(describing: UserStoreError.alreadyExists(start.user)),
                closesConnection: true)
        }

        let caCertificate = services.pki.authority.certificate
        let serverProof = Digest.hmacSHA256(
            key: key,
            data: SignedRecord.enrollment(
                role: "server", user: start.user, clientNonce: start.nonce, serverNonce: serverNonce,
                channelBinding: channelBinding, caFingerprint: caCertificate.sha256Fingerprint))
        try channel.send(
            .enrollAccepted, id: requestID,
            body: EnrollAccepted(
                proof: Data(serverProof).base64EncodedString(), caCertificate: caCertificate.pem))

        let (_, request) = try expectRequest(.enrollRequest, EnrollRequest.self)
        let certificate = try issue(request, user: start.user)

        let verifier: PasswordVerifier
        do {
            verifier = try PasswordVerifier.derive(
                password: PasswordPolicy.normalize(request.password),
                iterations: services.configuration.verifierIterations)
        } catch {
            throw ServiceFailure(.internalError, "deriving the password verifier failed")
        }
        try services.issuedCertificates.record(certificate)
        let record = UserRecord(
            role: RolePolicy.enrollmentRole, verifier: verifier, certificate: certificate,
            enrolledAt: Timestamp.format(Date()))
        do {
            try services.users.add(start.user, record)
        } catch let error as UserStoreError {
            throw ServiceFailure(.alreadyExists, String(describing: error), closesConnection: true)
        }
        try channel.send(
            .enrollCompleted, id: requestID,
            body: EnrollCompleted(certificate: certificate.pem, role: RolePolicy.enrollmentRole))
        logEvent(
            .info, "enroll.completed",
            [
                ("user", start.user), ("role", RolePolicy.enrollmentRole),
                ("certificate.serial", certificate.serialNumberHex),
            ])
    }

    /// Checks the password policy and signs the CSR under the CA policy.
    private func issue(_ request: EnrollRequest, user: String) throws -> Certificate {
        do {
            try services.passwordPolicy().check(request.password, user: user)
        } catch let error as PasswordPolicyError {
            throw ServiceFailure(.policyRejected, error.description, closesConnection: true)
        }
        let csr: CertificateSigningRequest
        do {
            csr = try CertificateSigningRequest(pem: request.csr)
        } catch {
            throw ServiceFailure(.invalidRequest, "invalid CSR: \(error)", closesConnection: true)
        }
        do {
            return try services.pki.authority.signClientCertificate(
                csr, expectedName: user, validityDays: services.configuration.clientCertificateDays)
        } catch let error as CryptoError {
            logEvent(.warning, "enroll.csr-rejected", [("user", user), ("error", error.description)])
            throw ServiceFailure(.policyRejected, error.description, closesConnection: true)
        }
    }
}
