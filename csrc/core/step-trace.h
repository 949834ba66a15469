// Where a multi-thread call's threads spend each time step: a developer's probe, compiled in
// only with -DFASTRNN_STEP_TRACE (CONTRIBUTING.md); without it every function here is empty.
//
// Each thread stamps the time stamp counter where it starts its share of a call and where it
// arrives at and leaves each barrier. After the call the caller turns the stamps of its first
// two threads into samples per barrier:
//   work     – from leaving the barrier before (or the start) to arriving at this one;
//   wait     – the thread that arrived first: from its arrival to its leaving;
//   wake     – how long after the last one arrived the first one left (the hand-off);
//   last     – the last one's own time in the barrier (its arrival and the sense store);
// and at exit prints their percentiles per call shape to stderr, in nanoseconds (the counter
// is calibrated against the steady clock over the process's life).
#pragma once

#include <cstdint>

namespace fastrnn::step_trace {

#ifdef FASTRNN_STEP_TRACE
void call_begin(int nt);     // before the team starts (the caller)
void thread_start(int tid);  // a thread's share begins
void arrive(int tid);        // a thread reaches a barrier
void leave(int tid);         // and passes it
// After the join (the caller): folds the stamps into the samples of calls of this shape.
void call_end(int64_t B, int64_t T, int H, int dtype);
#else
inline void call_begin(int) {}
inline void thread_start(int) {}
inline void arrive(int) {}
inline void leave(int) {}
inline void call_end(int64_t, int64_t, int, int) {}
#endif

}  // namespace fastrnn::step_trace
