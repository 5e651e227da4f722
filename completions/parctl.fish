# fish completion for parctl(8). The options are completed here; commands, sub-commands,
# flags and fault names come from parctl itself (`parctl __complete WORD... CUR`), so this
# script never falls behind the binary.

function __parctl_complete
    set -l tokens (commandline -opc)
    set -l cur (commandline -ct)
    set -l args
    set -l skip 0
    # Global options come before the command; everything from the command on is its words.
    for word in $tokens[2..-1]
        if test $skip -eq 1
            set skip 0
            continue
        end
        if test (count $args) -eq 0
            switch $word
                case -s --socket -t --timeout
                    set skip 1
                    continue
                case '-*'
                    continue
            end
        end
        set -a args $word
    end
    if test (count $args) -eq 0; and string match -q -- '-*' $cur
        return
    end
    # validate takes a package file or directory: parctl says so by exiting 1.
    $tokens[1] __complete $args $cur 2>/dev/null
    or __fish_complete_path $cur
end

complete -c parctl -f -a '(__parctl_complete)'
complete -c parctl -s s -l socket -r -F -d "pard's admin socket"
complete -c parctl -s j -l json -d 'JSON output for scripts'
complete -c parctl -s t -l timeout -x -d 'seconds to wait for an answer'
complete -c parctl -s h -l help -d 'usage'
complete -c parctl -l version -d 'print the version'
