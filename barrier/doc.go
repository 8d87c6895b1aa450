// Package barrier cuts journal entries into windows and coalesces them.
//
// A window is the run of entries between two barriers. Every FLUSH entry,
// every entry with the FUA bit (FUA|METADATA included) and every MARK closes
// the window it is in, after itself; so does a size cap (Limits), before the
// window would grow past it. Adding a barrier only adds order, so splitting
// is always safe; windows are never merged across a barrier.
//
// Inside a window the kernel made no promise about durability, so its
// entries may be applied in any order and in parallel, except that
// overlapping entries keep journal order (the last writer wins). Coalesce
// resolves those overlaps once, up front: it turns a window's entries into
// disjoint extents, each either a discard (zero the range) or a run of
// payload pieces to write with one vectored write. Disjoint extents can be
// applied in any order, by any number of goroutines, and give the same bytes
// as replaying the entries one by one.
//
// Any subset of a window's entries, applied in journal order on top of the
// state before the window, is a state the source could have crashed into
// (the idea of CrashMonkey). RandomSubset picks one and CoalesceSubset turns
// it into extents.
package barrier
