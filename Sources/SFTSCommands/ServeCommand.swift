import Foundation
import SFTSLogging
import SFTSServer

#if canImport(Glibc)
    import Glibc
#endif

/// `sfts serve` and `sfts csr-serve`.
enum ServeCommand {
    static func run(_ arguments: ParsedArguments, enrollmentOnly: Bool) throws -> ExitCode {
        let root = ServerCommandSupport.root(arguments)
        let configuration = try configure(arguments, root: root, enrollmentOnly: enrollmentOnly)
        let passphrase = try Secrets.read(Secrets.pkiPassphrase, from: arguments)
        let pki = try ServerPKI.load(root: root, passphrase: passphrase)
        let logger = try Logger(file: root.serverLog, mirrorToStandardError: true)

        // Block the stop signals before any thread starts, so every thread inherits the mask
        // and only the sigwait below receives them.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGTERM, SIGINT, SIGHUP] {
            sigaddset(&signals, signal)
        }
        pthread_sigmask(SIG_BLOCK, &signals, nil)

        let server = try Server(configuration: configuration, pki: pki, logger: logger)
        try server.start()
        while true {
            var received: Int32 = 0
            guard sigwait(&signals, &received) == 0 else { continue }
            if received == SIGHUP {
                // New connections get the certificate and key now on disk; open ones keep theirs.
                do {
                    try server.reload(pki: try ServerPKI.load(root: root, passphrase: passphrase))
                } catch {
                    logger.error("server.reload-failed", ["error": "\(error)"])
                }
                continue
            }
            logger.info("server.stopping", ["signal": received == SIGTERM ? "SIGTERM" : "SIGINT"])
            break
        }
        server.stop(grace: 5)
        return .success
    }

    static func configure(_ arguments: ParsedArguments, root: StateRoot, enrollmentOnly: Bool)
        throws -> ServerConfiguration
    {
        var configuration = ServerConfiguration(root: root)
        configuration.runsFileService = !enrollmentOnly
        configuration.runsEnrollmentService = enrollmentOnly || !arguments.flag("--no-csr")
        if let listen = arguments.value("--listen") {
            guard CAInitializer.isIPAddress(listen) else {
                throw UsageError(
                    "invalid --listen address '\(listen)': give a numeric IPv4 or IPv6 address, such as "
                        + "127.0.0.1 or ::")
            }
            configuration.listenAddress = listen
        }
        if let port = try arguments.port("--port") {
            configuration.filePort = port
        }
        if let port = try arguments.port("--csr-port") {
            configuration.enrollmentPort = port
        }
        if let lifetime = try arguments.duration("--cert-lifetime", in: 5...(3650 * 86400)) {
            configuration.clientCertificateLifetime = lifetime
        }
        var limits = configuration.limits
        if let seconds = try arguments.seconds("--handshake-timeout", in: 0.5...600) {
            limits.handshakeTimeout = seconds
        }
        if let seconds = try arguments.seconds("--idle-timeout", in: 1...86400) {
            limits.idleTimeout = seconds
        }
        if let count = try arguments.integer("--max-connections", in: 1...100_000) {
            limits.maxConnections = count
        }
        if let count = try arguments.integer("--max-connections-per-ip", in: 1...100_000) {
            limits.maxConnectionsPerAddress = count
        }
        if let bytes = try arguments.integer("--max-frame-size", in: 4096...(16 << 20)) {
            limits.maxFrameBytes = bytes
        }
        if let bytes = try arguments.integer("--max-file-size", in: 0...Int.max) {
            limits.maxFileBytes = UInt64(bytes)
        }
        configuration.limits = limits
        if let seconds = try arguments.seconds("--time-tolerance", in: 1...3600) {
            configuration.timestampTolerance = seconds
        }
        if let count = try arguments.integer("--max-auth-failures", in: 1...1_000_000) {
            configuration.blockPolicy.threshold = count
        }
        if let seconds = try arguments.seconds("--failure-window", in: 1...31_536_000) {
            configuration.blockPolicy.window = seconds
        }
        if let seconds = try arguments.seconds("--block-duration", in: 1...31_536_000) {
            configuration.blockPolicy.duration = seconds
        }
        if configuration.runsFileService && configuration.runsEnrollmentService
            && configuration.filePort == configuration.enrollmentPort
        {
            throw UsageError(
                "--port and --csr-port are both \(configuration.filePort); give them different ports")
        }
        return configuration
    }
}
