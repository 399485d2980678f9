import Foundation
import SFTSLogging
import SFTSProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// When authentication failures from one address lead to a block.
public struct BlockPolicy: Sendable, Equatable {
    /// Failures within the window that block the address.
    public var threshold = 3
    /// The sliding window over which failures count, in seconds.
    public var window: TimeInterval = 24 * 3600
    /// How long a block lasts, in seconds.
    public var duration: TimeInterval = 24 * 3600

    public init() {}
}

/// A temporary block of one address, as blocked_ip.json stores it.
public struct AddressBlock: Codable, Equatable, Sendable {
    public var since: String
    public var until: String
    public var failures: Int
    public var lastReason: String

    public init(since: String, until: String, failures: Int, lastReason: String) {
        self.since = since
        self.until = until
        self.failures = failures
        self.lastReason = lastReason
    }

    /// The end of the block; a block whose end does not parse counts as expired.
    public var end: Date {
        Timestamp.parse(until) ?? .distantPast
    }
}

/// Authentication failures and blocks by address key (see ``AddressGuard/key(for:)``).
/// Implementations must make each call atomic against other processes, such as
/// `sfts block lift` next to a running server.
public protocol AuthenticationFailureStore: Sendable {
    /// Adds a failure at `date`, forgets those older than `window`, and returns how many remain.
    func recordFailure(_ key: String, at date: Date, window: TimeInterval) throws -> Int
    func clearFailures(_ key: String) throws
    func setBlock(_ key: String, _ block: AddressBlock) throws
    /// The block of `key` if it lasts past `date`.
    func activeBlock(_ key: String, at date: Date) throws -> AddressBlock?
    /// Every block that lasts past `date`.
    func activeBlocks(at date: Date) throws -> [String: AddressBlock]
    /// Removes the block and the failures of `key`; returns false when there was no block.
    func lift(_ key: String) throws -> Bool
}

/// The default failure store: auth_failures.json (address key to failure times) and
/// blocked_ip.json (address key to block).
public struct JSONAuthenticationFailureStore: AuthenticationFailureStore {
    private let failures: JSONFile<[String: [String]]>
    private let blocks: JSONFile<[String: AddressBlock]>

    public init(failures: URL, blocks: URL) {
        self.failures = JSONFile(url: failures, empty: { [:] })
        self.blocks = JSONFile(url: blocks, empty: { [:] })
    }

    public func recordFailure(_ key: String, at date: Date, window: TimeInterval) throws -> Int {
        try failures.update { table in
            let cutoff = date - window
            // Prune every address on each write, so the file holds only the current window.
            for (address, times) in table {
                let recent = times.filter { (Timestamp.parse($0) ?? .distantPast) > cutoff }
                table[address] = recent.isEmpty ? nil : recent
            }
            table[key, default: []].append(Timestamp.format(date))
            return table[key]!.count
        }
    }

    public func clearFailures(_ key: String) throws {
        let current = try failures.read()
        guard current[key] != nil else { return }
        try failures.update { $0[key] = nil }
    }

    /// Sets the block of `key` and removes blocks that have ended, so the file holds only
    /// current ones.
    public func setBlock(_ key: String, _ block: AddressBlock) throws {
        try blocks.update { table in
            table = table.filter { $0.value.end > Date() }
            table[key] = block
        }
    }

    public func activeBlock(_ key: String, at date: Date) throws -> AddressBlock? {
        guard let block = try blocks.read()[key], block.end > date else { return nil }
        return block
    }

    /// Returns the blocks in force at `date`, and removes those that have ended from the file.
    public func activeBlocks(at date: Date) throws -> [String: AddressBlock] {
        let all = try blocks.read()
        let active = all.filter { $0.value.end > date }
        if active.count < all.count {
            try blocks.update { table in table = table.filter { $0.value.end > date } }
        }
        return active
    }

    public func lift(_ key: String) throws -> Bool {
        let lifted = try blocks.update { table in table.removeValue(forKey: key) != nil }
        try failures.update { $0[key] = nil }
        return lifted
    }
}

/// Tracks authentication failures per client address in a sliding window and blocks an
/// address that reaches the threshold, for both services.
///
/// Only the TCP peer address counts. IPv4-mapped IPv6 addresses arrive as IPv4 already, and an
/// IPv6 address counts as its /64 network, since one host usually controls a whole /64.
public final class AddressGuard: Sendable {
    public let policy: BlockPolicy
    private let store: AuthenticationFailureStore
    private let logger: Logger

    public init(store: AuthenticationFailureStore, policy: BlockPolicy, logger: Logger) {
        self.store = store
        self.policy = policy
        self.logger = logger
    }

    /// The key failures and blocks are counted under: the IPv4 address itself, or the /64
    /// network of an IPv6 address, such as `2001:db8:1:2::/64`.
    public static func key(for address: String) -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        guard address.contains(":"), inet_pton(AF_INET6, address, &bytes) == 1 else {
            return address
        }
        if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xFF && bytes[11] == 0xFF {
            return "\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])"
        }
        for index in 8..<16 {
            bytes[index] = 0
        }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        guard inet_ntop(AF_INET6, bytes, &text, socklen_t(text.count)) != nil else { return address }
        return String(cString: text) + "/64"
    }

    /// The block on `address`, if one is in force. A store that cannot be read blocks nobody,
    /// and the error is logged.
    public func activeBlock(for address: String, at date: Date = Date()) -> AddressBlock? {
        do {
            return try store.activeBlock(AddressGuard.key(for: address), at: date)
        } catch {
            logger.error("guard.read-failed", ["peer.address": address, "error": "\(error)"])
            return nil
        }
    }

    /// Counts one authentication failure and blocks the address when it reaches the
    /// threshold; returns the new block, if any.
    @discardableResult
    public func recordFailure(for address: String, reason: String, at date: Date = Date()) -> AddressBlock? {
        let key = AddressGuard.key(for: address)
        do {
            let count = try store.recordFailure(key, at: date, window: policy.window)
            guard count >= policy.threshold else { return nil }
            let block = AddressBlock(
                since: Timestamp.format(date), until: Timestamp.format(date + policy.duration),
                failures: count, lastReason: reason)
            try store.setBlock(key, block)
            logger.warning(
                "address.blocked",
                ["peer.address": address, "key": key, "failures": String(count), "until": block.until])
            return block
        } catch {
            logger.error("guard.write-failed", ["peer.address": address, "error": "\(error)"])
            return nil
        }
    }

    /// Forgets the failures of an address after a successful login.
    public func recordSuccess(for address: String) {
        do {
            try store.clearFailures(AddressGuard.key(for: address))
        } catch {
            logger.error("guard.write-failed", ["peer.address": address, "error": "\(error)"])
        }
    }
}
