package broker

import "wren/diskqueue"

// diskLossStats is what a topic's or channel's disk queue has lost since
// the broker started: records skipped as damaged, files set aside as
// unreadable (at open, or by go-diskqueue while reading), and messages
// acknowledged before a write that failed. nsqd reports none of it; the
// fields carry a wren_ prefix and are left out while zero, so /stats keeps
// nsqd's bytes on an undamaged broker.
type diskLossStats struct {
	DamagedRecords int64 `json:"wren_damaged_records,omitempty"`
	DamagedFiles   int64 `json:"wren_damaged_files,omitempty"`
	LostMessages   int64 `json:"wren_lost_messages,omitempty"`
}

func diskLoss(b *diskqueue.Backlog) diskLossStats {
	records, files := b.Damaged()
	return diskLossStats{DamagedRecords: records, DamagedFiles: files, LostMessages: b.Lost()}
}
