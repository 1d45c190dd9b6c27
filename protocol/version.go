package protocol

// NSQVersion is the NSQ release whose behaviour wren matches. It is the
// version wren reports to clients and tools (IDENTIFY, /info, /stats, the
// lookup registry) so that version checks in them treat wren as that nsqd.
const NSQVersion = "1.3.0"
