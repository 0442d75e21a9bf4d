// Package querylog is Vigil's per-client log of lookups: the blocked ones,
// and the allowed ones too when querylog.log_allowed is on.
//
// Writing stays off the query path. Log.Record, and a UDP reader's
// Lane.Add, encode an entry and hand it to a bounded queue without ever
// waiting: when the queue is full the entry is dropped and counted
// (Stats.Dropped). Log.Run is the one writer: it batches entries into
// append-only segment files, one per kind per UTC hour, in
// <store.dir>/querylog/ (segments.go), syncs them every sync_interval and
// deletes the hours past the retention. Readers (Entries, Clients, Client,
// Top, ClientDays) walk the segments newest first, while the writer
// appends or with no writer at all; a fleet's shipper reads them forward
// as a spool (spool.go: SpoolSegments, ReadSpool), keeping its own
// position. The log does not use Badger.
//
// Loss bound. A graceful shutdown (Run's context ends) drains the queue
// and the lanes and loses nothing. A process crash, even SIGKILL, loses
// at most queue_size entries, plus up to twice 128 (or queue_size, if
// smaller) per UDP reader. queue_size counts every entry handed to the
// writer until it is written (queued, in the batch being built, in the
// batch being written); a reader's lane holds up to 128 more, and a flush
// moves what a lane holds into the batch while the lane fills again. A written batch is in the page cache, so
// it survives the process. A power loss additionally loses up to
// sync_interval of entries written since the last sync to disk.
// Config.LossBound spells the figure out for the lanes in use, and
// Stats.LossBound reports it.
//
// While the disk is almost full (Log.PauseWhen) the writer drops its
// batches and counts them (Stats.LowDiskDropped); DNS keeps answering.
package querylog
