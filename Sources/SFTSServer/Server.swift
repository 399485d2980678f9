import Foundation
import SFTSCrypto
import SFTSLogging
import SFTSProtocol
import SFTSTLS

#if canImport(Glibc)
    import Glibc
#endif

/// The state and helpers the services of one server share.
final class ServerServices: @unchecked Sendable {
    let configuration: ServerConfiguration
    let credentials: CredentialsProvider
    let users: UserStore
    let fileRecords: FileRecordStore
    let files: FileStore
    let issuedCertificates: IssuedCertificateStore
    let requests: RequestGuard
    let addressGuard: AddressGuard
    let logger: Logger
    let watchdog = DeadlineWatchdog()

    let revocations: RevocationStore
    let tokens: TokenStore

    init(configuration: ServerConfiguration, pki: ServerPKI, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        let root = configuration.root
        revocations = JSONRevocationStore(url: root.revocations)
        tokens = JSONTokenStore(url: root.tokens)
        credentials = try CredentialsProvider(root: root, pki: pki, revocations: revocations, logger: logger)
        users = JSONUserStore(url: root.users)
        fileRecords = JSONFileRecordStore(url: root.fileRecords)
        files = FileStore(root: root.directory)
        issuedCertificates = FolderIssuedCertificateStore(folder: root.issuedFolder)
        requests = RequestGuard(tolerance: configuration.timestampTolerance)
        addressGuard = AddressGuard(
            store: JSONAuthenticationFailureStore(failures: root.authFailures, blocks: root.blockedAddresses),
            policy: configuration.blockPolicy, logger: logger)
    }

    /// Reads roles.json afresh on every call, so edits apply without a restart.
    func rolePolicy() throws -> RolePolicy {
        try RolePolicy.load(from: configuration.root.roles)
    }

    func passwordPolicy() throws -> PasswordPolicy {
        PasswordPolicy(blocked: try BlockedPasswords.load(from: configuration.root.blockedPasswords))
    }
}

/// The sfts server: the file service and the enrollment service, each on its own listener,
/// one thread per connection.
public final class Server: @unchecked Sendable {
    private let services: ServerServices
    private let limiter: ConnectionLimiter
    private var listeners: [TCPListener] = []
    private let stateLock = NSLock()
    private let stopped = DispatchSemaphore(value: 0)
    private var connectionCounter = 0

    /// The bound port of the file service, once started.
    public private(set) var filePort: UInt16?
    /// The bound port of the enrollment service, once started.
    public private(set) var enrollmentPort: UInt16?

    public init(configuration: ServerConfiguration, pki: ServerPKI, logger: Logger) throws {
        services = try ServerServices(configuration: configuration, pki: pki, logger: logger)
        limiter = ConnectionLimiter(
            maxTotal: configuration.limits.maxConnections,
            maxPerAddress: configuration.limits.maxConnectionsPerAddress)
    }

    /// Binds the listeners and starts accepting connections.
    public func start() throws {
        let configuration = services.configuration
        _ = try RolePolicy.load(from: configuration.root.roles)
        _ = try services.passwordPolicy()
        let removed = services.files.removeStaleTemporaries()
        if removed > 0 {
            services.logger.warning("uploads.cleaned", ["files": String(removed)])
        }

        if configuration.runsFileService {
            let listener = try TCPListener(
                address: configuration.listenAddress, port: configuration.filePort)
            filePort = listener.port
            listeners.append(listener)
            startAcceptLoop(listener, service: "file")
        }
        if configuration.runsEnrollmentService {
            let listener = try TCPListener(
                address: configuration.listenAddress, port: configuration.enrollmentPort)
            enrollmentPort = listener.port
            listeners.append(listener)
            startAcceptLoop(listener, service: "enrollment")
        }
        services.logger.info(
            "server.started",
            [
                "listen": configuration.listenAddress,
                "file.port": filePort.map { String($0) } ?? "off",
                "enrollment.port": enrollmentPort.map { String($0) } ?? "off",
                "root": configuration.root.url.path,
                "ca.fingerprint": services.credentials.credentials().pki.authority.certificate.sha256Fingerprint
                    .colonHexString,
            ])
    }

    /// Stops accepting, gives open connections up to `grace` seconds to finish, then returns.
    public func stop(grace: TimeInterval = 5) {
        stateLock.lock()
        let current = listeners
        listeners = []
        stateLock.unlock()
        guard !current.isEmpty else { return }
        for listener in current {
            listener.close()
        }
        let deadline = Date() + grace
        while limiter.openConnections > 0 && Date() < deadline {
            usleep(50_000)
        }
        services.watchdog.stop()
        services.logger.info(
            "server.stopped", ["connections.open": String(limiter.openConnections)])
        stopped.signal()
    }

    /// Switches to keys and certificates loaded again from the state root, as on SIGHUP.
    /// Connections already open finish with the ones they started with.
    public func reload(pki: ServerPKI) throws {
        try services.credentials.reload(pki: pki)
        services.logger.info(
            "server.reloaded",
            [
                "server.serial": pki.serverCertificate.serialNumberHex,
                "server.not-after": LogLine.timestamp(pki.serverCertificate.notAfter),
            ])
    }

    /// Blocks until ``stop(grace:)`` has finished.
    public func waitUntilStopped() {
        stopped.wait()
    }

    private func startAcceptLoop(_ listener: TCPListener, service: String) {
        let thread = Thread { [self] in
            while true {
                let accepted: AcceptedSocket
                do {
                    accepted = try listener.accept()
                } catch {
                    return
                }
                handle(accepted, service: service)
            }
        }
        thread.name = "accept-\(service)"
        thread.start()
    }

    private func handle(_ accepted: AcceptedSocket, service: String) {
        if let reason = limiter.admit(accepted.peerAddress) {
            services.logger.warning(
                "connection.rejected",
                ["service": service, "peer.address": accepted.peerAddress, "reason": reason])
            close(accepted.descriptor)
            return
        }
        stateLock.lock()
        connectionCounter += 1
        let connectionID = connectionCounter
        stateLock.unlock()

        let thread = Thread { [self] in
            defer { limiter.release(accepted.peerAddress) }
            let credentials = services.credentials.credentials()
            let connection: TLSConnection
            do {
                connection = try TLSConnection(
                    context: service == "file" ? credentials.fileContext : credentials.enrollmentContext,
                    descriptor: accepted.descriptor)
            } catch {
                services.logger.error(
                    "connection.failed",
                    ["connection": String(connectionID), "error": String(describing: error)])
                return
            }
            let peer = PeerInfo(
                connectionID: connectionID, address: accepted.peerAddress, port: accepted.peerPort)
            if service == "file" {
                FileSession(services: services, credentials: credentials, connection: connection, peer: peer).run()
            } else {
                EnrollmentSession(services: services, credentials: credentials, connection: connection, peer: peer)
                    .run()
            }
            _ = services.watchdog.finish(connection)
            connection.close()
        }
        thread.stackSize = 1 << 20
        thread.name = "\(service)-\(connectionID)"
        thread.start()
    }
}

/// The peer of a connection, for logs and limits.
struct PeerInfo {
    let connectionID: Int
    let address: String
    let port: UInt16
}

/// An error reported to the client in an `error` frame, after which the session goes on
/// unless `closesConnection` is set.
struct ServiceFailure: Error {
    let code: WireErrorCode
    let message: String
    var closesConnection = false
    /// The id the error frame carries when it responds to a frame that began no exchange yet,
    /// such as a command rejected for its timestamp.
    var requestID: String?

    init(_ code: WireErrorCode, _ message: String, closesConnection: Bool = false, requestID: String? = nil) {
        self.code = code
        self.message = message
        self.closesConnection = closesConnection
        self.requestID = requestID
    }
}
