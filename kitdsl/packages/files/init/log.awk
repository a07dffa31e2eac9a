# A container's output: appended to FILE and copied to the console, each line there prefixed
# with [NAME]. Installed as /usr/lib/kitdsl/log.awk:
#
#   runc run ... 2>&1 | awk -v name=NAME -v file=FILE -v size=BYTES -f log.awk
#
# SIZE is how big FILE already is. Lines are flushed one by one, so the log and the console
# follow the container as it runs. /var/log is in memory: when FILE passes 1 MiB it becomes
# FILE.1 (replacing the one before) and a new FILE starts, so a chatty service keeps at most
# 2 MiB of its log.
BEGIN { limit = 1048576 }
{
	if (size > limit) {
		close(file)
		system("mv -f '" file "' '" file ".1'")
		size = 0
	}
	print >> file
	fflush(file)
	size += length($0) + 1
	print "[" name "] " $0
	fflush("/dev/stdout")
}
