import Foundation
import SFTSCrypto
import SFTSProtocol

/// The reason a request's envelope was rejected before its command ran.
public struct RequestRejection: Error, Equatable {
    public let code: WireErrorCode
    public let message: String
}

/// Rejects requests whose timestamp is outside the tolerance, in the past or the future, and
/// requests whose id was already seen within the window, so a captured request cannot be
/// played again.
public final class RequestGuard: @unchecked Sendable {
    public let tolerance: TimeInterval
    /// The first 128 bits of the SHA-256 of a request id: a fixed-size key, so an entry takes
    /// the same few dozen bytes whatever the id's length.
    private struct IDKey: Hashable {
        let high: UInt64
        let low: UInt64

        init(_ id: String) {
            let digest = Digest.sha256(Array(id.utf8))
            high = digest[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
            low = digest[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
        }
    }

    private struct Remembered {
        let expiry: Date
        /// The client's hash, which keeps each entry small; two clients whose hashes collide
        /// merely share one budget.
        let client: Int
    }

    private var seen: [IDKey: Remembered] = [:]
    private var perClient: [Int: Int] = [:]
    private var nextPurge = Date.distantPast
    private var nextFullPurge = Date.distantPast
    private let lock = NSLock()

    /// The maximum number of request ids remembered at once. It bounds the memory a flood of
    /// requests can take: about 10 MiB per 100 000 ids, measured as the server's resident size
    /// on x86-64 Linux, so about 100 MiB for the default of one million.
    public let maxRemembered: Int
    /// The share of ``maxRemembered`` one client may hold, so one flooding client cannot take
    /// the capacity of all others. The default of 100 000 over the 61 s that an id is kept
    /// lets one user send about 1 600 requests a second.
    public let maxRememberedPerClient: Int

    public init(tolerance: TimeInterval, maxRemembered: Int = 1_000_000, maxRememberedPerClient: Int = 100_000) {
        self.tolerance = tolerance
        self.maxRemembered = maxRemembered
        self.maxRememberedPerClient = maxRememberedPerClient
    }

    /// Checks a request's id and timestamp against the clock `now`, and remembers the id.
    /// `client` names whose share the id counts against: the user after a login, else the
    /// address, so many connections of one client share one budget.
    public func check(id: String, timestamp: String, client: String = "", now: Date = Date()) throws {
        guard RequestID.isValid(id) else {
            throw RequestRejection(
                code: .invalidRequest,
                message: "invalid request id; use 8 to 64 letters, digits or '-'")
        }
        guard let date = Timestamp.parse(timestamp) else {
            throw RequestRejection(
                code: .invalidRequest,
                message: "invalid timestamp \(RemotePath.quoted(timestamp)); send ISO 8601 with "
                    + "a time zone, for example 2026-01-31T12:00:00.000Z")
        }
        let skew = date.timeIntervalSince(now)
        guard abs(skew) <= tolerance else {
            let direction = skew > 0 ? "ahead of" : "behind"
            throw RequestRejection(
                code: .staleTimestamp,
                message: "request timestamp is \(Int(abs(skew).rounded())) s \(direction) the "
                    + "server clock; the tolerance is \(Int(tolerance)) s, so check the clock")
        }

        let client = client.hashValue
        let key = IDKey(id)
        lock.lock()
        defer { lock.unlock() }
        let full =
            seen.count >= maxRemembered
            || perClient[client, default: 0] >= maxRememberedPerClient
        if now >= nextPurge || (full && now >= nextFullPurge) {
            seen = seen.filter { $0.value.expiry > now }
            perClient = seen.values.reduce(into: [:]) { $0[$1.client, default: 0] += 1 }
            nextPurge = now + tolerance
            nextFullPurge = now + 1
        }
        if let entry = seen[key], entry.expiry > now {
            throw RequestRejection(
                code: .replayedRequest, message: "request id \(id) was already used")
        }
        guard seen.count < maxRemembered,
            perClient[client, default: 0] < maxRememberedPerClient
        else {
            throw RequestRejection(
                code: .busy,
                message: "too many requests in the last \(Int(2 * tolerance)) s; slow down and try again")
        }
        // An id must be remembered for as long as its timestamp could still pass the check.
        seen[key] = Remembered(expiry: date + tolerance + 1, client: client)
        perClient[client, default: 0] += 1
    }
}
