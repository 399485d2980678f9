import Foundation
import SFTSProtocol
import Testing

/// An in-memory byte stream that records how much the channel asked to read.
final class MemoryStream {
    var input: [UInt8]
    var output: [UInt8] = []
    var readPosition = 0
    var largestRead = 0

    init(_ input: [UInt8] = []) {
        self.input = input
    }

    func channel(maxFrameBytes: Int = 65536) -> FrameChannel {
        FrameChannel(
            maxFrameBytes: maxFrameBytes,
            read: { buffer in
                self.largestRead = max(self.largestRead, buffer.count)
                let count = min(buffer.count, self.input.count - self.readPosition)
                for index in 0..<count {
                    buffer[index] = self.input[self.readPosition + index]
                }
                self.readPosition += count
                return count
            },
            write: { buffer in self.output.append(contentsOf: buffer) })
    }
}

@Suite struct FrameChannelTests {
    @Test func sendThenReceiveRoundTrips() throws {
        let stream = MemoryStream()
        try stream.channel().send(.put, id: "request-0001", body: PutRequest(name: "a/b.txt", size: 42, force: true))
        let reader = MemoryStream(stream.output)
        let frame = try reader.channel().receive()
        #expect(frame.type == .put)
        #expect(frame.id == "request-0001")
        #expect(Timestamp.parse(frame.timestamp) != nil)
        let body = try frame.expect(.put, PutRequest.self)
        #expect(body.name == "a/b.txt")
        #expect(body.size == 42)
        #expect(body.force)
    }

    @Test func lengthPrefixIsBigEndian() throws {
        let stream = MemoryStream()
        try stream.channel().send(.list, id: "request-0001", body: ListRequest(path: "", long: false))
        let length =
            Int(stream.output[0]) << 24 | Int(stream.output[1]) << 16 | Int(stream.output[2]) << 8
            | Int(stream.output[3])
        #expect(length == stream.output.count - 4)
        #expect(stream.output[4] == UInt8(ascii: "{"))
    }

    @Test func hugeDeclaredLengthRejectedBeforeReadingIt() {
        let stream = MemoryStream([0xFF, 0xFF, 0xFF, 0xFF, 0x7B])
        #expect(throws: ProtocolError.frameTooLarge(declared: 0xFFFF_FFFF, limit: 65536)) {
            try stream.channel().receive()
        }
        // Only the 4-byte prefix was read: nothing was sized by the declared length.
        #expect(stream.readPosition == 4)
        #expect(stream.largestRead == 4)
    }

    @Test func emptyAndTruncatedFramesRejected() {
        #expect(throws: ProtocolError.emptyFrame) { try MemoryStream([0, 0, 0, 0]).channel().receive() }
        #expect(throws: ProtocolError.truncated(expected: 16, received: 3)) {
            try MemoryStream([0, 0, 0, 16, 1, 2, 3]).channel().receive()
        }
        #expect(throws: ProtocolError.connectionClosed) { try MemoryStream([]).channel().receive() }
    }

    @Test func malformedJSONAndVersionRejected() throws {
        func frame(_ json: String) -> [UInt8] {
            let bytes = Array(json.utf8)
            return [0, 0, UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
        }
        #expect(throws: ProtocolError.self) { try MemoryStream(frame("not json")).channel().receive() }
        #expect(throws: ProtocolError.unsupportedVersion(2)) {
            try MemoryStream(frame(#"{"v":2,"type":"list","id":"x","ts":"t","body":{}}"#)).channel().receive()
        }
        let wrongBody = try MemoryStream(frame(#"{"v":1,"type":"put","id":"x","ts":"t","body":{"name":5}}"#))
            .channel().receive()
        #expect(throws: ProtocolError.self) { try wrongBody.expect(.put, PutRequest.self) }
    }

    @Test func errorFrameThrownAsRemoteError() throws {
        let stream = MemoryStream()
        try stream.channel().sendError(.permissionDenied, "denied", id: "request-0001")
        let frame = try MemoryStream(stream.output).channel().receive()
        #expect(throws: ProtocolError.remote(code: .permissionDenied, message: "denied")) {
            try frame.expect(.putReady, EmptyBody.self)
        }
    }
}

@Suite struct BodyPipelineTests {
    final class Sink: @unchecked Sendable {
        var bytes: [UInt8] = []
        var failAfter = Int.max
        var writes = 0
    }

    @Test func writesChunksInOrder() throws {
        let sink = Sink()
        let pipeline = BodyPipeline(chunkBytes: 4096) { data in
            sink.bytes.append(contentsOf: data)
        }
        for value in 0..<10 {
            let buffer = pipeline.nextBuffer()
            for index in 0..<100 {
                buffer[index] = UInt8(value)
            }
            pipeline.submit(buffer, count: 100)
        }
        try pipeline.finish()
        #expect(sink.bytes.count == 1000)
        #expect(sink.bytes[0] == 0)
        #expect(sink.bytes[999] == 9)
        #expect((0..<10).allSatisfy { sink.bytes[$0 * 100] == UInt8($0) })
    }

    @Test func firstWriteErrorStopsLaterWrites() {
        let sink = Sink()
        sink.failAfter = 2
        let pipeline = BodyPipeline(chunkBytes: 4096) { data in
            sink.writes += 1
            if sink.writes > sink.failAfter { throw POSIXError(.ENOSPC) }
            sink.bytes.append(contentsOf: data)
        }
        for _ in 0..<5 {
            let buffer = pipeline.nextBuffer()
            pipeline.submit(buffer, count: 10)
        }
        #expect(throws: POSIXError.self) { try pipeline.finish() }
        #expect(sink.bytes.count == 20)
        #expect(sink.writes == 3)
    }

    @Test func releasedWithABufferTakenDoesNotTrap() {
        // A body that ends early, as when a client disconnects, leaves a buffer taken.
        var pipeline: BodyPipeline? = BodyPipeline(chunkBytes: 4096) { _ in }
        _ = pipeline?.nextBuffer()
        pipeline = nil
        #expect(pipeline == nil)
    }

    @Test func chunkSizeFollowsBodySize() {
        #expect(BodyPipeline.chunkBytes(forBodyOf: 0) == 65536)
        #expect(BodyPipeline.chunkBytes(forBodyOf: 1 << 20) == 131_072)
        #expect(BodyPipeline.chunkBytes(forBodyOf: 1 << 30) == 1 << 20)
    }
}

extension BodyPipelineTests {
    @Test func stagesSeeEveryChunkInOrder() throws {
        let first = Sink()
        let second = Sink()
        let pipeline = BodyPipeline(
            chunkBytes: 4096,
            stages: [{ first.bytes.append(contentsOf: $0) }, { second.bytes.append(contentsOf: $0) }])
        for value in 0..<20 {
            let buffer = pipeline.nextBuffer()
            for index in 0..<64 {
                buffer[index] = UInt8(value)
            }
            pipeline.submit(buffer, count: 64)
        }
        try pipeline.finish()
        #expect(first.bytes == second.bytes)
        #expect(second.bytes.count == 20 * 64)
        #expect((0..<20).allSatisfy { second.bytes[$0 * 64 + 63] == UInt8($0) })
    }
}
