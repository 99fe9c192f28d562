# evscope's default reducer, used when no --reducer is given.
#
# One entry per stream (or per event type when an event has no stream),
# holding the deep merge of the data objects of that stream's events.
# A non-object data replaces the entry.
($event.stream // $event.type) as $key
| .[$key] = (if ($event.data | type) == "object" and ((.[$key] // {}) | type) == "object"
             then (.[$key] // {}) * $event.data
             else $event.data end)
