import Foundation
import SFTSTLS

/// Counts open connections in total and per address, and rejects those over the limits.
final class ConnectionLimiter: @unchecked Sendable {
    private let maxTotal: Int
    private let maxPerAddress: Int
    private var total = 0
    private var perAddress: [String: Int] = [:]
    private let lock = NSLock()

    init(maxTotal: Int, maxPerAddress: Int) {
        self.maxTotal = maxTotal
        self.maxPerAddress = maxPerAddress
    }

    /// Reserves a slot for `address`, or returns the reason it is rejected. Addresses count
    /// as ``AddressGuard/key(for:)`` groups them, an IPv6 /64 as one.
    func admit(_ address: String) -> String? {
        let address = AddressGuard.key(for: address)
        lock.lock()
        defer { lock.unlock() }
        if total >= maxTotal {
            return "the server has \(total) connections, its maximum"
        }
        let current = perAddress[address, default: 0]
        if current >= maxPerAddress {
            return "the address has \(current) connections, the maximum per address"
        }
        total += 1
        perAddress[address] = current + 1
        return nil
    }

    func release(_ address: String) {
        let address = AddressGuard.key(for: address)
        lock.lock()
        defer { lock.unlock() }
        total -= 1
        let remaining = perAddress[address, default: 1] - 1
        perAddress[address] = remaining > 0 ? remaining : nil
    }

    var openConnections: Int {
        lock.lock()
        defer { lock.unlock() }
        return total
    }
}

/// Cuts off connections that pass their deadline, which bounds the whole handshake or frame
/// and not just each read, so a client trickling one byte at a time cannot hold a thread.
final class DeadlineWatchdog: @unchecked Sendable {
    private var deadlines: [ObjectIdentifier: (deadline: Date, connection: TLSConnection)] = [:]
    private var expired = Set<ObjectIdentifier>()
    private let lock = NSLock()
    private var running = true

    init() {
        let thread = Thread { [weak self] in
            while let watchdog = self, watchdog.tick() {
                usleep(100_000)
            }
        }
        thread.name = "deadline-watchdog"
        thread.start()
    }

    /// Arms (or with nil, disarms) the deadline of `connection`.
    func set(_ connection: TLSConnection, deadline: Date?) {
        lock.lock()
        defer { lock.unlock() }
        let key = ObjectIdentifier(connection)
        if let deadline {
            deadlines[key] = (deadline, connection)
        } else {
            deadlines[key] = nil
        }
    }

    /// Forgets `connection` and returns true when the watchdog had cut it off.
    func finish(_ connection: TLSConnection) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let key = ObjectIdentifier(connection)
        deadlines[key] = nil
        return expired.remove(key) != nil
    }

    /// Returns true when `connection` was cut off for passing its deadline.
    func didExpire(_ connection: TLSConnection) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        return expired.contains(ObjectIdentifier(connection))
    }

    func stop() {
        lock.lock()
        running = false
        lock.unlock()
    }

    private func tick() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        let now = Date()
        for (key, entry) in deadlines where entry.deadline <= now {
            entry.connection.abort()
            expired.insert(key)
            deadlines[key] = nil
        }
        return running
    }
}
