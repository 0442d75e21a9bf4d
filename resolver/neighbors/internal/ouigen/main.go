// Command ouigen compiles the IEEE MA-L registry (oui.csv, as Debian's
// ieee-data package ships it) into the compact table package neighbors
// embeds: gzip of "N\n", N records of 3-byte OUI + 2-byte vendor index
// sorted by OUI, then the vendor names, one per line.
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"
)

func main() {
	in := flag.String("in", "/usr/share/ieee-data/oui.csv", "the IEEE MA-L registry in CSV")
	out := flag.String("out", "oui.bin.gz", "the table to write")
	flag.Parse()
	f, err := os.Open(*in)
	if err != nil {
		log.Fatalf("%v (install Debian's ieee-data package)", err)
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = -1
	type rec struct {
		oui    [3]byte
		vendor string
	}
	var recs []rec
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		if len(row) < 3 || row[0] != "MA-L" || len(row[1]) != 6 {
			continue
		}
		b, err := hex.DecodeString(row[1])
		if err != nil {
			continue
		}
		name := strings.Join(strings.Fields(row[2]), " ")
		if name == "" {
			continue
		}
		recs = append(recs, rec{[3]byte(b), name})
	}
	slices.SortFunc(recs, func(a, b rec) int { return slices.Compare(a.oui[:], b.oui[:]) })
	recs = slices.CompactFunc(recs, func(a, b rec) bool { return a.oui == b.oui })
	var names []string
	index := map[string]uint16{}
	o, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	zw, _ := gzip.NewWriterLevel(o, gzip.BestCompression)
	fmt.Fprintf(zw, "%d\n", len(recs))
	for _, rc := range recs {
		i, ok := index[rc.vendor]
		if !ok {
			if len(names) == 1<<16 {
				log.Fatal("more than 65536 vendors")
			}
			i = uint16(len(names))
			index[rc.vendor] = i
			names = append(names, rc.vendor)
		}
		var rec [5]byte
		copy(rec[:3], rc.oui[:])
		binary.BigEndian.PutUint16(rec[3:], i)
		if _, err := zw.Write(rec[:]); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := io.WriteString(zw, strings.Join(names, "\n")); err != nil {
		log.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := o.Close(); err != nil {
		log.Fatal(err)
	}
	log.Printf("%d prefixes, %d vendors", len(recs), len(names))
}
