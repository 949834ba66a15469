// Running a call's team on the OpenMP threads of the program that calls fastrnn.
//
// Inside a torch model (fastrnn.accelerate) fastrnn's calls alternate with torch's ops, and
// torch's OpenMP threads spin for milliseconds after each op (libgomp's GOMP_SPINCOUNT). A
// fastrnn team of its own pool's threads then fights them for the cores: each pool's idle
// threads spin on the cores the other pool's call wants (a decoder loop of LSTMCell steps
// between linear layers at 2 threads: 2-3x slower than torch alone). Run on torch's own
// team instead — the threads already spinning for the next parallel region — the two
// alternate without a hand-over: one pool, as torch's ops share it among themselves, and each
// team thread stays on its core with its share of the weights in that core's cache.
//
// fastrnn never loads an OpenMP runtime: it uses one the process has loaded already (torch's
// libgomp; LLVM's and Intel's runtimes provide libgomp's entry points too), found among the
// loaded libraries. Linux only; elsewhere nothing is found and calls use fastrnn's pool.
#pragma once

#include <string>

namespace fastrnn {

// Finds a loaded OpenMP runtime, preferring one whose path contains `hint` (e.g. torch's
// directory), and uses it from now on for calls that ask for it. Returns its path; "" when no
// OpenMP runtime is loaded (then nothing changes). Safe to call again: the last one found
// stays in use. In a child forked after the runtime was attached (its regions hang there)
// nothing is attached, now or later.
std::string host_openmp_attach(const std::string& hint);
// The runtime's path, "" if none was attached.
std::string host_openmp_path();

// The largest team the attached runtime can run for the calling thread now: 0 when none is
// attached, the thread is inside a parallel region of it, its dynamic adjustment is on or it
// allows no active parallel level; else its thread limit (INT_MAX without one). Up to that,
// a parallel region gets exactly the threads it asks for (OpenMP 5.2 §10.1.1, which libgomp
// follows). Call it before taking locks: a runtime's first call on a thread may register the
// thread under the runtime's own locks.
int host_openmp_max_team();

// Runs fn(ctx, tid) for tid in [0, n) on a parallel region of the attached runtime; the
// calling thread runs tid 0. The region asks for at least the runtime's own team size
// (omp_get_max_threads: torch's thread count), so a smaller team never shrinks the host's
// thread pool (libgomp ends the threads a smaller region leaves out, and the host's next
// region would start them again); threads past n return at once. Returns false, having run
// nothing, if the region got fewer than n threads (or none is attached): the caller then runs
// the work another way. fn must not throw.
bool host_openmp_run(int n, void (*fn)(void* ctx, int tid), void* ctx);

// For tests: makes host_openmp_run see every region as the wrong size (the fallback path).
void host_openmp_test_mismatch(bool on);

}  // namespace fastrnn
