import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A failure below TLS: name resolution, connecting, accepting, or a socket call.
public enum NetworkError: Error, CustomStringConvertible {
    case resolutionFailed(host: String, reason: String)
    case connectFailed(host: String, port: UInt16, reason: String)
    case listenFailed(address: String, port: UInt16, reason: String)
    case timedOut(String)
    case systemCall(String, errno: Int32)

    public var description: String {
        switch self {
        case .resolutionFailed(let host, let reason):
            return "cannot resolve \(host): \(reason)"
        case .connectFailed(let host, let port, let reason):
            return "cannot connect to \(SocketAddressText.join(host, port)): \(reason)"
        case .listenFailed(let address, let port, let reason):
            return "cannot listen on \(SocketAddressText.join(address, port)): \(reason)"
        case .timedOut(let what):
            return "\(what) timed out"
        case .systemCall(let call, let code):
            return "\(call) failed: \(String(cString: strerror(code)))"
        }
    }
}

/// Text forms of socket addresses.
public enum SocketAddressText {
    /// `host:port`, with brackets around an IPv6 address.
    public static func join(_ host: String, _ port: UInt16) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// The numeric address of `storage`; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is
    /// returned as its IPv4 form so one client is one address whichever way it connected.
    static func numericHost(_ storage: inout sockaddr_storage) -> (host: String, port: UInt16) {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let length = socklen_t(
            storage.ss_family == sa_family_t(AF_INET6)
                ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size)
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo(
                    $0, length, &host, socklen_t(host.count), &service, socklen_t(service.count),
                    NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard result == 0 else { return ("unknown", 0) }
        var text = String(cString: host)
        if text.lowercased().hasPrefix("::ffff:"), text.contains(".") {
            text = String(text.dropFirst(7))
        }
        return (text, UInt16(String(cString: service)) ?? 0)
    }
}

/// POSIX socket helpers shared by listeners and clients.
public enum SocketOptions {
    /// Sets receive and send timeouts; a blocked read or write then fails with EAGAIN.
    public static func setTimeouts(_ descriptor: Int32, receive: TimeInterval, send: TimeInterval) {
        func apply(_ option: Int32, _ seconds: TimeInterval) {
            var value = timeval(
                tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
            setsockopt(descriptor, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size))
        }
        apply(SO_RCVTIMEO, receive)
        apply(SO_SNDTIMEO, send)
    }

    static func setFlag(_ descriptor: Int32, _ level: Int32, _ option: Int32, _ enabled: Bool) {
        var value: Int32 = enabled ? 1 : 0
        setsockopt(descriptor, level, option, &value, socklen_t(MemoryLayout<Int32>.size))
    }
}

/// An accepted TCP connection: its descriptor, which the receiver must close, and the peer.
public struct AcceptedSocket: Sendable {
    public let descriptor: Int32
    /// The peer's numeric address, IPv4-mapped IPv6 addresses as IPv4.
    public let peerAddress: String
    public let peerPort: UInt16
}

/// A listening TCP socket.
public final class TCPListener: @unchecked Sendable {
    public let descriptor: Int32
    public let address: String
    /// The bound port, which differs from the requested one when that was 0.
    public let port: UInt16
    private let closeLock = NSLock()
    private var closed = false

    /// Binds and listens on `address` (numeric IPv4 or IPv6; `::` also accepts IPv4 clients
    /// where the system allows dual-stack sockets) and `port`.
    public init(address: String, port: UInt16, backlog: Int32 = 512) throws {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(address, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw NetworkError.listenFailed(
                address: address, port: port,
                reason: "not a numeric IP address (\(String(cString: gai_strerror(status))))")
        }
        defer { freeaddrinfo(list) }

        let descriptor = socket(first.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw NetworkError.listenFailed(
                address: address, port: port, reason: String(cString: strerror(errno)))
        }
        SocketOptions.setFlag(descriptor, SOL_SOCKET, SO_REUSEADDR, true)
        if first.pointee.ai_family == AF_INET6 {
            SocketOptions.setFlag(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, false)
        }
        guard bind(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0,
            listen(descriptor, backlog) == 0
        else {
            let reason = String(cString: strerror(errno))
            Glibc.close(descriptor)
            throw NetworkError.listenFailed(address: address, port: port, reason: reason)
        }

        var bound = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getsockname(descriptor, $0, &length)
            }
        }
        self.descriptor = descriptor
        self.address = address
        self.port = SocketAddressText.numericHost(&bound).port
    }

    deinit {
        close()
    }

    /// Waits for the next connection. Throws once the listener is closed.
    public func accept() throws -> AcceptedSocket {
        while true {
            var storage = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let client = withUnsafeMutablePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    Glibc.accept(descriptor, $0, &length)
                }
            }
            if client < 0 {
                let code = errno
                if code == EINTR || code == ECONNABORTED { continue }
                if code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM {
                    // Out of descriptors or memory: back off instead of spinning.
                    usleep(50_000)
                    continue
                }
                throw NetworkError.systemCall("accept", errno: code)
            }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            SocketOptions.setFlag(client, Int32(IPPROTO_TCP), TCP_NODELAY, true)
            let peer = SocketAddressText.numericHost(&storage)
            return AcceptedSocket(descriptor: client, peerAddress: peer.host, peerPort: peer.port)
        }
    }

    /// Stops listening and wakes a thread blocked in ``accept()``.
    public func close() {
        closeLock.lock()
        defer { closeLock.unlock() }
        guard !closed else { return }
        closed = true
        shutdown(descriptor, Int32(SHUT_RDWR))
        Glibc.close(descriptor)
    }
}

/// Outgoing TCP connections.
public enum TCPClient {
    /// Connects to `host`:`port`, trying each resolved address until one responds within
    /// `timeout` seconds. Returns a blocking descriptor with TCP_NODELAY set.
    ///
    /// - Parameter sourceAddress: A numeric local address to connect from, such as another
    ///   loopback address; by default the system picks one.
    public static func connect(
        host: String, port: UInt16, timeout: TimeInterval, sourceAddress: String? = nil
    ) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, list != nil else {
            throw NetworkError.resolutionFailed(
                host: host, reason: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(list) }

        var lastReason = "no address"
        var entry = list
        while let current = entry {
            entry = current.pointee.ai_next
            let descriptor = socket(
                current.pointee.ai_family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            if descriptor < 0 {
                lastReason = String(cString: strerror(errno))
                continue
            }
            if let sourceAddress, !bind(descriptor, to: sourceAddress, family: current.pointee.ai_family) {
                lastReason = "cannot bind to source address \(sourceAddress): \(String(cString: strerror(errno)))"
                Glibc.close(descriptor)
                continue
            }
            let flags = fcntl(descriptor, F_GETFL)
            _ = fcntl(descriptor, F_SETFL, flags | O_NONBLOCK)
            var result = Glibc.connect(descriptor, current.pointee.ai_addr, current.pointee.ai_addrlen)
            if result != 0 && errno == EINPROGRESS {
                var poller = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
                let ready = poll(&poller, 1, Int32(timeout * 1000))
                if ready == 0 {
                    Glibc.close(descriptor)
                    lastReason = "timed out after \(Int(timeout)) s"
                    continue
                }
                var socketError: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &socketError, &length)
                if socketError != 0 {
                    errno = socketError
                } else {
                    result = 0
                }
            }
            if result != 0 {
                lastReason = String(cString: strerror(errno))
                Glibc.close(descriptor)
                continue
            }
            _ = fcntl(descriptor, F_SETFL, flags)
            SocketOptions.setFlag(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, true)
            return descriptor
        }
        throw NetworkError.connectFailed(host: host, port: port, reason: lastReason)
    }

    private static func bind(_ descriptor: Int32, to address: String, family: Int32) -> Bool {
        var hints = addrinfo()
        hints.ai_family = family
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address, nil, &hints, &list) == 0, let first = list else { return false }
        defer { freeaddrinfo(list) }
        return Glibc.bind(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0
    }
}
