# bash completion for parctl(8). The options are completed here; commands, sub-commands,
# flags and fault names come from parctl itself (`parctl __complete WORD... CUR`), so this
# script never falls behind the binary.
_parctl()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
	local i=1 word
	local -a args=()

	case $prev in
	-s|--socket)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	-t|--timeout)
		return
		;;
	esac
	# Global options come before the command; everything from the command on is its words.
	while [ "$i" -lt "$COMP_CWORD" ]; do
		word=${COMP_WORDS[i]}
		if [ "${#args[@]}" -eq 0 ]; then
			case $word in
			-s|--socket|-t|--timeout)
				i=$((i + 2))
				continue
				;;
			-*)
				i=$((i + 1))
				continue
				;;
			esac
		fi
		args+=("$word")
		i=$((i + 1))
	done
	if [ "${#args[@]}" -eq 0 ] && [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "-s --socket -j --json -t --timeout -h --help --version" -- "$cur"))
		return
	fi
	local out
	if out=$("${COMP_WORDS[0]}" __complete "${args[@]}" "$cur" 2>/dev/null); then
		COMPREPLY=($(compgen -W "$out" -- "$cur"))
	else
		# validate takes a package file or directory.
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}
complete -F _parctl parctl
