import Foundation
import SFTSCrypto
import SFTSProtocol
import SFTSTLS

/// One enrollment connection: mutual proofs of the host code or of a one-time token, bound to
/// the TLS channel, then the CSR and the password, then the signed certificate.
///
/// The client proves its secret first, so nobody without one learns anything from the server
/// but a nonce and the public CA certificate. The server's proof covers that CA certificate,
/// which is how the client comes to trust a CA it has never seen.
///
/// A new user name needs the host code or a token for it. An enrolled name needs a token for
/// it, or, with the host code, that user's current password, so the shared host code alone
/// cannot take an account over.
final class EnrollmentSession: Session {
    /// Nonces are 16 to 64 random bytes, base64.
    static let nonceBytes = 32

    /// Set once the client has proved its secret; failures before that count against its
    /// address.
    private var proofVerified = false

    /// How the client proved itself.
    private enum Method: String {
        case hostCode = "host-code"
        case token
    }

    init(services: ServerServices, credentials: ServerCredentials, connection: TLSConnection, peer: PeerInfo) {
        super.init(
            services: services, credentials: credentials, connection: connection, peer: peer, service: "enrollment")
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
            endAfterUnexpected(error, requestID: requestID, command: "enroll")
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
        let (method, key) = try proofKey(for: start)
        let serverNonce = Data(SecureRandom.bytes(EnrollmentSession.nonceBytes)).base64EncodedString()
        let channelBinding: [UInt8]
        do {
            channelBinding = try connection.channelBinding()
        } catch {
            throw ServiceFailure(.invalidRequest, String(describing: error), closesConnection: true)
        }
        let caCertificate = credentials.pki.authority.certificate
        try channel.send(
            .enrollChallenge, id: requestID, body: EnrollChallenge(nonce: serverNonce, caCertificate: caCertificate.pem)
        )

        let (_, proof) = try expectRequest(.enrollProof, EnrollProof.self)
        let expected = Digest.hmacSHA256(
            key: key,
            data: SignedRecord.enrollment(
                role: "client", user: start.user, clientNonce: start.nonce, serverNonce: serverNonce,
                channelBinding: channelBinding, caFingerprint: []))
        guard let received = Data(base64Encoded: proof.proof),
            Digest.constantTimeEqual(Array(received), expected)
        else {
            logEvent(
                .warning, "enroll.auth-failed",
                [("user", start.user), ("method", method.rawValue), ("reason", "wrong proof")])
            let what = method == .token ? "token" : "host code"
            throw ServiceFailure(
                .authenticationFailed,
                "enrollment refused: the \(what) proof is wrong; check the \(what) with the server operator",
                closesConnection: true)
        }
        proofVerified = true

        let serverProof = Digest.hmacSHA256(
            key: key,
            data: SignedRecord.enrollment(
                role: "server", user: start.user, clientNonce: start.nonce, serverNonce: serverNonce,
                channelBinding: channelBinding, caFingerprint: caCertificate.sha256Fingerprint))
        try channel.send(
            .enrollAccepted, id: requestID, body: EnrollAccepted(proof: Data(serverProof).base64EncodedString()))

        let (_, request) = try expectRequest(.enrollRequest, EnrollRequest.self)
        let existing = try services.users.user(named: start.user)
        let verifier = try verifier(for: request, user: start.user, existing: existing, method: method)
        let csr = try parseCSR(request, user: start.user)
        // Check the CSR before the token is spent, so a rejected CSR leaves the token usable.
        try checkPolicy(csr, user: start.user)
        if method == .token, let tokenID = start.token {
            try consume(tokenID)
        }
        let certificate = try issue(csr, user: start.user)
        try services.issuedCertificates.record(certificate)

        let role: String
        let now = Timestamp.format(Date())
        if let existing {
            role = existing.role
            try services.users.modify(start.user) { record in
                record.replaceCertificate(certificate)
                if let verifier {
                    record.setVerifier(verifier, at: now)
                }
            }
        } else {
            role = RolePolicy.enrollmentRole
            guard let verifier else {
                throw ServiceFailure(.internalError, "no password verifier for a new user")
            }
            do {
                try services.users.add(
                    start.user, UserRecord(role: role, verifier: verifier, certificate: certificate, enrolledAt: now))
            } catch let error as UserStoreError {
                throw ServiceFailure(.alreadyExists, String(describing: error), closesConnection: true)
            }
        }
        try channel.send(
            .enrollCompleted, id: requestID, body: EnrollCompleted(certificate: certificate.pem, role: role))
        logEvent(
            .info, "enroll.completed",
            [
                ("user", start.user), ("role", role), ("method", method.rawValue),
                ("reenrolled", existing == nil ? "false" : "true"),
                ("certificate.serial", certificate.serialNumberHex),
            ])
    }

    /// Picks the key the proofs use: the token's secret when the client names a token, the
    /// host code otherwise. An unknown, expired, used or foreign token is rejected here.
    private func proofKey(for start: EnrollStart) throws -> (Method, [UInt8]) {
        guard let tokenID = start.token else {
            return (.hostCode, Array(credentials.pki.hostCode.utf8))
        }
        let issuer = TokenIssuer(root: services.configuration.root, store: services.tokens)
        guard let record = try issuer.store.token(id: tokenID), record.user == start.user,
            record.isUsable(at: Date())
        else {
            logEvent(
                .warning, "enroll.auth-failed", [("user", start.user), ("method", "token"), ("reason", "bad token")])
            throw ServiceFailure(
                .authenticationFailed,
                "enrollment refused: the token is unknown, expired, already used, cancelled or for another "
                    + "user; "
                    + "ask the operator for a new one (sfts ca token)", closesConnection: true)
        }
        return (.token, try issuer.secret(id: tokenID, user: record.user, expires: record.expires))
    }

    /// Decides the password verifier to store, or nil to keep the existing one.
    ///
    /// A token or a new user sets the password, which must pass the policy. Re-enrolling an
    /// existing user with the host code requires that user's current password, which stays.
    private func verifier(
        for request: EnrollRequest, user: String, existing: UserRecord?, method: Method
    ) throws -> PasswordVerifier? {
        if let existing, method == .hostCode {
            if try services.revocations.index().revoked[existing.certificateSerial] != nil {
                logEvent(.warning, "enroll.rejected", [("user", user), ("reason", "certificate revoked")])
                throw ServiceFailure(
                    .authenticationFailed,
                    "the certificate of '\(user)' was revoked; enrolling again needs a token from the operator "
                        + "(sfts ca token \(user))", closesConnection: true)
            }
            // Wrong passwords count against the account as well as the address, so guessing
            // from many addresses is bounded too.
            let accountKey = "user:\(user)"
            if services.addressGuard.activeBlock(for: accountKey) != nil {
                logEvent(.warning, "enroll.rejected", [("user", user), ("reason", "account blocked")])
                throw ServiceFailure(
                    .blocked,
                    "too many wrong passwords for '\(user)'; enrolling again needs a token from the operator "
                        + "(sfts ca token \(user))", closesConnection: true)
            }
            guard let current = existing.verifier,
                let keys = try? SCRAM.keys(
                    password: PasswordPolicy.normalize(request.password), salt: current.salt,
                    iterations: current.iterations),
                Digest.constantTimeEqual(Digest.sha256(keys.clientKey), current.storedKey)
            else {
                logEvent(.warning, "enroll.rejected", [("user", user), ("reason", "existing user, wrong password")])
                let failure = ServiceFailure(
                    .authenticationFailed,
                    "user '\(user)' is already enrolled: enrolling again with the host code needs that user's "
                        + "current password; otherwise ask the operator for a token (sfts ca token \(user))",
                    closesConnection: true)
                recordAuthenticationFailure(failure)
                services.addressGuard.recordFailure(for: accountKey, reason: "wrong password at re-enrollment")
                throw failure
            }
            return nil
        }
        do {
            try services.passwordPolicy().check(request.password, user: user)
        } catch let error as PasswordPolicyError {
            throw ServiceFailure(.policyRejected, error.description, closesConnection: true)
        }
        do {
            return try PasswordVerifier.derive(
                password: PasswordPolicy.normalize(request.password),
                iterations: services.configuration.verifierIterations)
        } catch {
            throw ServiceFailure(.internalError, "deriving the password verifier failed")
        }
    }

    private func consume(_ tokenID: String) throws {
        do {
            try services.tokens.consume(tokenID, at: Date(), from: peer.address)
        } catch let error as TokenError {
            let reason: String
            switch error {
            case .cancelled: reason = "cancelled"
            case .expired: reason = "expired"
            default: reason = "used"
            }
            logEvent(
                .warning, "enroll.auth-failed", [("method", "token"), ("reason", "token \(reason) meanwhile")])
            throw ServiceFailure(
                .authenticationFailed,
                "enrollment refused: the token was \(reason) meanwhile; ask the operator for "
                    + "a new one (sfts ca token)", closesConnection: true)
        }
    }

    private func parseCSR(_ request: EnrollRequest, user: String) throws -> CertificateSigningRequest {
        do {
            return try CertificateSigningRequest(pem: request.csr)
        } catch {
            throw ServiceFailure(.invalidRequest, "invalid CSR: \(error)", closesConnection: true)
        }
    }

    private func checkPolicy(_ csr: CertificateSigningRequest, user: String) throws {
        do {
            try ClientCSRPolicy(expectedName: user).check(csr)
        } catch let error as CryptoError {
            logEvent(.warning, "enroll.csr-rejected", [("user", user), ("error", error.description)])
            throw ServiceFailure(.policyRejected, error.description, closesConnection: true)
        }
    }

    /// Signs the CSR under the CA policy.
    private func issue(_ csr: CertificateSigningRequest, user: String) throws -> Certificate {
        do {
            return try credentials.pki.authority.signClientCertificate(
                csr, expectedName: user, validity: services.configuration.clientCertificateLifetime)
        } catch let error as CryptoError {
            logEvent(.warning, "enroll.csr-rejected", [("user", user), ("error", error.description)])
            throw ServiceFailure(.policyRejected, error.description, closesConnection: true)
        }
    }
}
