// Command genckpt writes a series of torch-style checkpoints like those of a
// fine-tuning run that freezes most of a model: zip files laid out as
// torch.save writes them (a pickle member, then one stored member per
// tensor), where the frozen backbone's tensors are the same in every
// checkpoint and the trained head and optimizer moments change. It prints
// the unique bytes of the series (every distinct tensor and pickle once)
// for `make bench` to compare stored bytes against.
//
//	go run ./scripts/genckpt -out DIR [-n 4] [-backbone-mb 256]
package main
