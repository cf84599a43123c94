import Foundation

/// One dedicated OS thread that runs every write transaction of a journal.
///
/// LMDB binds a write transaction to the thread that began it, and Swift tasks may resume on any
/// thread after an `await`, so no write transaction ever runs on a task: jobs are queued here and
/// the thread drains the whole queue into one group (group commit). Callers wait on a continuation
/// or a semaphore, never on the thread's own queue.
final class WriterThread: @unchecked Sendable {
    typealias Job = @Sendable () -> Void
    typealias GroupHandler = @Sendable ([PendingAppend]) -> Void

    private let condition = NSCondition()
    private var pending: [PendingAppend] = []
    private var other: [Job] = []
    private var stopping = false
    private var thread: Thread?
    private let done = DispatchSemaphore(value: 0)

    init(name: String, handleGroup: @escaping GroupHandler) {
        let t = Thread { [unowned self] in self.run(handleGroup) }
        t.name = name
        t.stackSize = 1 << 20
        thread = t
        t.start()
    }

    func submit(_ append: PendingAppend) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if stopping { return false }
        pending.append(append)
        condition.signal()
        return true
    }

    /// Runs `job` on the writer thread (between groups).
    func submit(job: @escaping Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if stopping { return false }
        other.append(job)
        condition.signal()
        return true
    }

    /// Runs `body` on the writer thread and waits for its result.
    func sync<T>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let sem = DispatchSemaphore(value: 0)
        let accepted = submit(job: { box.result = Result { try body() }; sem.signal() })
        guard accepted else { throw JournalError.closed }
        sem.wait()
        return try box.result!.get()
    }

    /// Finishes queued work, then stops the thread.
    func stop() {
        condition.lock()
        if stopping { condition.unlock(); return }
        stopping = true
        condition.signal()
        condition.unlock()
        done.wait()
    }

    private func run(_ handleGroup: GroupHandler) {
        while true {
            condition.lock()
            while pending.isEmpty && other.isEmpty && !stopping { condition.wait() }
            let group = pending
            let jobs = other
            pending.removeAll(keepingCapacity: true)
            other.removeAll(keepingCapacity: true)
            let exit = stopping && group.isEmpty && jobs.isEmpty
            condition.unlock()
            if exit { break }
            for job in jobs { job() }
            if !group.isEmpty { handleGroup(group) }
        }
        done.signal()
    }
}

final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

/// One caller's append waiting for the writer thread.
final class PendingAppend: @unchecked Sendable {
    let requests: [PreparedRequest]
    private let complete: @Sendable (Result<[AppendResult], JournalError>) -> Void
    init(requests: [PreparedRequest], complete: @escaping @Sendable (Result<[AppendResult], JournalError>) -> Void) {
        self.requests = requests
        self.complete = complete
    }
    func finish(_ r: Result<[AppendResult], JournalError>) { complete(r) }
}
