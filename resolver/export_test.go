package resolver

// Exported for the external tests.

// MayBeLocalZone is mayBeLocalZone.
func MayBeLocalZone(name string) bool { return mayBeLocalZone(name) }

// LocalZoneNames returns every zone of localZones.
func LocalZoneNames() []string {
	var out []string
	for z := range localZones {
		out = append(out, z)
	}
	return out
}
