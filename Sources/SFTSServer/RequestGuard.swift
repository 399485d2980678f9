import Foundation
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
    private struct Remembered {
        let expiry: Date
        /// The client's hash, which keeps each entry small; two clients whose hashes collide
        /// merely share one budget.
        let client: Int
    }

    private var seen: [String: Remembered] = [:]
    private var perClient: [Int: Int] = [:]
    private var nextPurge = Date.distantPast
    private var nextFullPurge = Date.distantPast
    private let lock = NSLock()

    public init(tolerance: TimeInterval) {
        self.tolerance = tolerance
    }

    /// The maximum number of request ids remembered at once. It bounds the memory a flood of
    /// requests can take, estimated at about 30 MiB.
    public static let maxRemembered = 250_000
    /// The share of ``maxRemembered`` one client may hold, so one flooding client cannot take
    /// the capacity of all others.
    public static let maxRememberedPerClient = 25_000

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
        lock.lock()
        defer { lock.unlock() }
        let full =
            seen.count >= Self.maxRemembered
            || perClient[client, default: 0] >= Self.maxRememberedPerClient
        if now >= nextPurge || (full && now >= nextFullPurge) {
            seen = seen.filter { $0.value.expiry > now }
            perClient = seen.values.reduce(into: [:]) { $0[$1.client, default: 0] += 1 }
            nextPurge = now + tolerance
            nextFullPurge = now + 1
        }
        if let entry = seen[id], entry.expiry > now {
            throw RequestRejection(
                code: .replayedRequest, message: "request id \(id) was already used")
        }
        guard seen.count < Self.maxRemembered,
            perClient[client, default: 0] < Self.maxRememberedPerClient
        else {
            throw RequestRejection(
                code: .busy,
                message: "too many requests in the last \(Int(2 * tolerance)) s; slow down and try again")
        }
        // An id must be remembered for as long as its timestamp could still pass the check.
        seen[id] = Remembered(expiry: date + tolerance + 1, client: client)
        perClient[client, default: 0] += 1
    }
}
