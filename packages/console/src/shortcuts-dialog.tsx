import {
  Button, Dialog, DialogActions, DialogBody, DialogContent, DialogSurface, DialogTitle, Table, TableBody, TableCell, TableHeader, TableHeaderCell, TableRow,
  makeStyles, tokens,
} from '@fluentui/react-components';

const SHORTCUTS: Array<[string, string]> = [
  ['j / k', 'Next / previous row'],
  ['Enter', 'Open the row'],
  ['x', 'Select the row'],
  ['a', 'Approve the selection, or the row'],
  ['r', 'Reject the selection, or the row'],
  ['u', 'Undo the selection, or the row'],
  ['/', 'Search'],
  ['Escape', 'Close the flyout or dialog'],
  ['?', 'This list'],
];

const useStyles = makeStyles({
  key: { fontFamily: tokens.fontFamilyMonospace, whiteSpace: 'nowrap' },
});

/** The console's keyboard shortcuts, listed. */
export default function ShortcutsDialog({ onClose }: { onClose: () => void }) {
  const styles = useStyles();
  return (
    <Dialog open onOpenChange={(_, data) => !data.open && onClose()}>
      <DialogSurface>
        <DialogBody>
          <DialogTitle>Keyboard shortcuts</DialogTitle>
          <DialogContent>
            <Table size="small" aria-label="Keyboard shortcuts">
              <TableHeader><TableRow><TableHeaderCell>Key</TableHeaderCell><TableHeaderCell>Does</TableHeaderCell></TableRow></TableHeader>
              <TableBody>
                {SHORTCUTS.map(([key, does]) => (
                  <TableRow key={key}><TableCell className={styles.key}>{key}</TableCell><TableCell>{does}</TableCell></TableRow>
                ))}
              </TableBody>
            </Table>
          </DialogContent>
          <DialogActions><Button appearance="primary" onClick={onClose}>Close</Button></DialogActions>
        </DialogBody>
      </DialogSurface>
    </Dialog>
  );
}
